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

/**
 * The id after which a client wants a run's events: none given → 0 (from the start); a decimal
 * integer → that number; anything else (`1e1`, `0x3`, `-1`, past the safe integers) → undefined,
 * which the route refuses rather than guess what `Number()` would make of it.
 */
export function parseLastEventId(header: string | undefined): number | undefined {
  if (header === undefined) return 0;
  const digits = /^[ \t]*([0-9]+)[ \t]*$/.exec(header)?.[1];
  if (digits === undefined) return undefined;
  const value = Number(digits);
  return Number.isSafeInteger(value) ? value : undefined;
}
