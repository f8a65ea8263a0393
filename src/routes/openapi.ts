import type { Hono } from "hono";
import type { AppEnv } from "../app-types";
import { type OptionalRoutes, openApiDocument } from "../openapi";
import { methodNotAllowed } from "./method-not-allowed";

export function openApiRoutes(app: Hono<AppEnv>, has: OptionalRoutes): void {
  const document = openApiDocument(has);
  app.get("/openapi.json", (c) => c.json(document)).all("/openapi.json", methodNotAllowed("GET", "HEAD"));
}
