/** Which usage each turn of a rollout gets: the thread's totals at the turn's last token_count. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rolloutTurnUsage } from "../src/engine/rollout-usage";

const dir = mkdtempSync(join(tmpdir(), "rollout-usage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const event = (payload: Record<string, unknown>) => JSON.stringify({ timestamp: "2026-11-30T06:40:28.350Z", type: "event_msg", payload });
const started = (turnId: string) => event({ type: "task_started", turn_id: turnId });
const totals = (input: number, output: number) => ({
  input_tokens: input,
  cached_input_tokens: 1,
  cache_write_input_tokens: 0,
  output_tokens: output,
  reasoning_output_tokens: 2,
  total_tokens: input + output,
});
const tokenCount = (input: number, output: number) =>
  event({ type: "token_count", info: { total_token_usage: totals(input, output), last_token_usage: totals(1, 1) }, rate_limits: null });
const usage = (input: number, output: number) => ({
  input_tokens: input,
  cached_input_tokens: 1,
  cache_write_input_tokens: 0,
  output_tokens: output,
  reasoning_output_tokens: 2,
});

const cases: Array<[string, string[], Record<string, ReturnType<typeof usage>>]> = [
  [
    "each turn gets the totals at its last token_count",
    [
      JSON.stringify({ type: "session_meta", payload: { id: "thread" } }),
      started("turn-1"),
      JSON.stringify({ type: "response_item", payload: { type: "message", content: [{ text: 'a "token_count" in a message' }] } }),
      tokenCount(10, 5),
      started("turn-2"),
      tokenCount(20, 10),
      tokenCount(30, 15),
    ],
    { "turn-1": usage(10, 5), "turn-2": usage(30, 15) },
  ],
  ["a token_count without totals (rate limits only) counts for nothing", [started("turn-1"), event({ type: "token_count", info: null })], {}],
  ["a token_count before any turn belongs to none", [tokenCount(10, 5), started("turn-1")], {}],
  ["a line still being written is skipped", [started("turn-1"), tokenCount(10, 5), tokenCount(20, 10).slice(0, 60)], { "turn-1": usage(10, 5) }],
];

describe("rolloutTurnUsage", () => {
  for (const [name, lines, expected] of cases) {
    test(name, async () => {
      const path = join(dir, `${name.replace(/\W+/g, "-")}.jsonl`);
      writeFileSync(path, lines.join("\n"));
      expect(Object.fromEntries(await rolloutTurnUsage(path))).toEqual(expected);
    });
  }

  test("a compressed rollout (.jsonl.zst) reads alike", async () => {
    const path = join(dir, "compressed.jsonl.zst");
    writeFileSync(path, Bun.zstdCompressSync(`${[started("turn-1"), tokenCount(10, 5)].join("\n")}\n`));
    expect(Object.fromEntries(await rolloutTurnUsage(path))).toEqual({ "turn-1": usage(10, 5) });
  });

  test("a file that cannot be read gives no usage", async () => {
    expect((await rolloutTurnUsage(join(dir, "gone.jsonl"))).size).toBe(0);
  });
});
