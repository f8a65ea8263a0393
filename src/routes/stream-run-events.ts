import type { Context } from "hono";
import type { AppDeps, AppEnv } from "../app-types";
import type { Run } from "../runs/run";
import { streamRun } from "../sse/stream-run";

/** A run's events after `afterId` as this client's SSE stream: what POST /messages and GET /runs/{id}/events share. */
export function streamRunEvents(c: Context<AppEnv>, run: Pick<Run, "watch">, afterId: number, { config, metrics }: Pick<AppDeps, "config" | "metrics">): Response {
  // A turn may be quiet for minutes; heartbeats keep it alive, not Bun's idle timer.
  c.env?.timeout?.(c.req.raw, 0);
  return streamRun(c, (clientGone) => run.watch(afterId, clientGone), {
    heartbeatMs: config.heartbeatMs,
    ...(metrics && { onEventsSent: metrics.sseEventsSent }),
  });
}
