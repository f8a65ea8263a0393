import type { Hono } from "hono";
import type { AppEnv } from "../app";
import { openApiDocument } from "../openapi";
import { methodNotAllowed } from "./method-not-allowed";

export function openApiRoutes(app: Hono<AppEnv>): void {
  app.get("/openapi.json", (c) => c.json(openApiDocument)).all("/openapi.json", methodNotAllowed("GET", "HEAD"));
}
