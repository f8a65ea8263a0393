import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { RunEvent } from "../runs/run";

export const HEARTBEAT = ": keep-alive\n\n";

export type StreamOptions = {
  heartbeatMs: number;
  /** Called once when the client goes away before the stream ended. */
  onClientGone: () => void;
};

/**
 * Sends each run event as one SSE frame (`event:`, `data:`, `id:`), with a comment line as
 * heartbeat so that proxies and clients keep a quiet turn open. `events` must never throw: Hono's
 * error callback would append its own plain-text `error` event after our final `done`.
 */
export function streamRun(c: Context, events: AsyncIterable<RunEvent>, options: StreamOptions): Response {
  c.header("x-accel-buffering", "no");
  return streamSSE(c, async (stream) => {
    stream.onAbort(options.onClientGone);
    const heartbeat = setInterval(() => void stream.write(HEARTBEAT), options.heartbeatMs);
    try {
      // After a disconnect, writes fail silently; the events are still drained so that the run
      // can end and clean up.
      for await (const { id, event, data } of events) {
        await stream.writeSSE({ id: String(id), event, data });
      }
    } finally {
      clearInterval(heartbeat);
    }
  });
}
