import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { RunEvent } from "../runs/event-log";

export const HEARTBEAT = ": keep-alive\n\n";

/**
 * Sends a run's events as SSE frames (`event:`, `data:`, `id:`), with a comment line as heartbeat
 * so that proxies and clients keep a quiet turn open. `watch` gets a signal that aborts when the
 * client goes away, and must never throw: Hono's error callback would append its own plain-text
 * `error` event after our final `done`.
 */
export function streamRun(
  c: Context,
  watch: (clientGone: AbortSignal) => AsyncIterable<RunEvent>,
  { heartbeatMs, onEventSent }: { heartbeatMs: number; onEventSent?: () => void },
): Response {
  c.header("x-accel-buffering", "no");
  return streamSSE(c, async (stream) => {
    const clientGone = new AbortController();
    stream.onAbort(() => clientGone.abort());
    const heartbeat = setInterval(() => void stream.write(HEARTBEAT), heartbeatMs);
    try {
      for await (const { id, event, data } of watch(clientGone.signal)) {
        await stream.writeSSE({ id: String(id), event, data });
        onEventSent?.();
      }
    } finally {
      clearInterval(heartbeat);
    }
  });
}

/** `Last-Event-ID: n` → n; anything else → 0 (from the start). */
export function lastEventId(header: string | undefined): number {
  const value = Number(header?.trim());
  return Number.isSafeInteger(value) && value > 0 ? value : 0;
}
