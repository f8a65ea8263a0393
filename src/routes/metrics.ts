import type { Hono } from "hono";
import type { AppEnv } from "../app-types";
import type { Metrics } from "../metrics";
import { methodNotAllowed } from "./method-not-allowed";

/** Prometheus text format; behind the token like the rest of the API (scrapers can send one). */
export function metricsRoutes(app: Hono<AppEnv>, metrics: Metrics): void {
  app
    .get("/metrics", async (c) => c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType }))
    .all("/metrics", methodNotAllowed("GET", "HEAD"));
}
