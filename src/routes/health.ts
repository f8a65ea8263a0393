import type { Hono } from "hono";
import type { AppEnv } from "../app-types";
import { methodNotAllowed } from "./method-not-allowed";

export function healthRoutes(app: Hono<AppEnv>): void {
  app.get("/health", (c) => c.json({ status: "ok" })).all("/health", methodNotAllowed("GET", "HEAD"));
}
