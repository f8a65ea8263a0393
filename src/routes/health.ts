import { Hono } from "hono";
import type { AppEnv } from "../app";
import { methodNotAllowed } from "./method-not-allowed";

export function healthRoute(): Hono<AppEnv> {
  return new Hono<AppEnv>().get("/", (c) => c.json({ status: "ok" })).all("/", methodNotAllowed("GET", "HEAD"));
}
