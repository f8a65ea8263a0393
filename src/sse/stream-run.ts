import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { RunEvent } from "../runs/event-log";

export const HEARTBEAT = ": keep-alive\n\n";

/**
 * One event as an SSE frame, the bytes Hono's writeSSE makes for it: `event:`, `data:`, `id:`.
 * The data is JSON text, which never holds a line break (JSON escapes them inside strings), so it
 * is one `data:` line; event names and ids are ours and hold none either.
 */
export function sseFrame({ id, event, data }: RunEvent): string {
  return `event: ${event}\ndata: ${data}\nid: ${id}\n\n`;
}

/**
 * Sends a run's events as SSE frames, with a comment line as heartbeat so that proxies and
 * clients keep a quiet turn open. Each batch the run hands over (what was there at a wake-up)
 * leaves as one write: framing and writing event by event cost more than half of the forwarding
 * time. `watch` gets a signal that aborts when the client goes away, and must never throw: Hono's
 * error callback would append its own plain-text `error` event after our final `done`.
 */
export function streamRun(
  c: Context,
  watch: (clientGone: AbortSignal) => AsyncIterable<RunEvent[]>,
  { heartbeatMs, onEventsSent }: { heartbeatMs: number; onEventsSent?: (count: number) => void },
): Response {
  c.header("x-accel-buffering", "no");
  return streamSSE(c, async (stream) => {
    const clientGone = new AbortController();
    stream.onAbort(() => clientGone.abort());
    const heartbeat = setInterval(() => void stream.write(HEARTBEAT), heartbeatMs);
    try {
      for await (const batch of watch(clientGone.signal)) {
        let chunk = "";
        for (const event of batch) chunk += sseFrame(event);
        await stream.write(chunk);
        onEventsSent?.(batch.length);
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
