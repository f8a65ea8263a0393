/** How many events a second the server can frame and forward from an engine that emits as fast as it can. */
import { createApp } from "../src/app";
import type { Engine, ThreadEvent } from "../src/engine/types";
import { createLogger } from "../src/log";
import { RunRegistry } from "../src/runs/registry";
import { LOOPBACK_APP_CONFIG } from "../test/fixtures/cluster-replica";
import { median, round, table } from "./lib";

/** An engine whose one turn yields `count` agent-message deltas as fast as it can. */
export function floodEngine(count: number): Engine {
  return {
    async *runTurn() {
      yield { type: "thread.started", thread_id: "bench" } satisfies ThreadEvent;
      for (let i = 0; i < count; i++) {
        yield { type: "item.updated", item: { id: "item_1", type: "agent_message", text: `chunk ${i}` } } satisfies ThreadEvent;
      }
      yield {
        type: "turn.completed",
        usage: { input_tokens: 1, cached_input_tokens: 0, cache_write_input_tokens: 0, output_tokens: 1, reasoning_output_tokens: 0 },
      } satisfies ThreadEvent;
    },
  };
}

export async function sseForwarding({ events, rounds }: { events: number; rounds: number }): Promise<string> {
  const log = createLogger("warn");
  const runs = new RunRegistry(floodEngine(events), log, { maxConcurrent: 10, turnTimeoutMs: undefined });
  const app = createApp({ config: LOOPBACK_APP_CONFIG, runs, log });
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch, idleTimeout: 0 });
  const rates: number[] = [];
  let bytes = 0;
  try {
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      const res = await fetch(`http://127.0.0.1:${server.port}/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "user_message", message: "flood" }),
      });
      const body = await res.arrayBuffer();
      const seconds = (performance.now() - started) / 1000;
      bytes = body.byteLength;
      const text = new TextDecoder().decode(body);
      const last = text.slice(text.lastIndexOf("\n\n", text.length - 3) + 2);
      if (!last.startsWith("event: done\n") || !last.endsWith(`\nid: ${events + 3}\n\n`)) throw new Error("the stream did not end with done");
      rates.push((events + 3) / seconds);
    }
  } finally {
    await server.stop(true);
  }
  return [
    `SSE forwarding: a fake engine yields ${events} \`item.updated\` events as fast as it can; Bun.serve in this process, fetch client; ${rounds} rounds, median.`,
    "",
    table(["events per stream", "bytes per stream", "events/s", "MB/s"], [[events, bytes, Math.round(median(rates)), round((median(rates) * bytes) / (events + 3) / 1e6)]]),
  ].join("\n");
}
