import type { Hono } from "hono";
import type { AppDeps, AppEnv } from "../app-types";
import type { ReadyBody } from "../schemas";
import { methodNotAllowed } from "./method-not-allowed";

export function healthRoutes(app: Hono<AppEnv>): void {
  app.get("/health", (c) => c.json({ status: "ok" })).all("/health", methodNotAllowed("GET", "HEAD"));
}

/**
 * GET /ready, for a readiness probe or a load balancer: 200 while the server takes turns that can
 * reach the model; 503 when codex cannot authenticate, while the shared store (replicas) is down,
 * or while the server shuts down. Unlike
 * /health it may wait for the login check (at most its deadline), so it stays off that fast path.
 */
export function readyRoutes(app: Hono<AppEnv>, deps: Pick<AppDeps, "runs" | "codexLogin" | "cluster">): void {
  app
    .get("/ready", async (c) => {
      const login = (await deps.codexLogin?.current())?.state ?? "unknown";
      const store = deps.cluster?.store.state;
      const body: ReadyBody = deps.runs.closing
        ? { status: "shutting_down", codex_login: login }
        : { status: login === "missing" || store === "down" ? "not_ready" : "ready", codex_login: login };
      if (store !== undefined) body.store = store;
      return c.json(body, body.status === "ready" ? 200 : 503);
    })
    .all("/ready", methodNotAllowed("GET", "HEAD"));
}
