/**
 * The same scripted turns through a server on each engine: the SSE streams must be the same,
 * frame for frame (event, data, id), once thread ids, request ids and the model's port are
 * replaced by placeholders. This is what "a client cannot tell the engines apart" means.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSse, type SseFrame } from "./fixtures/sse";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { doneOf } from "./fixtures/turns";

let exec: TestServer;
let appServer: TestServer;
let workDir: string;

beforeAll(() => {
  exec = startTestServer({ engine: "exec" });
  appServer = startTestServer({ engine: "app-server" });
  workDir = realpathSync(mkdtempSync(join(tmpdir(), "parity-")));
  writeFileSync(join(workDir, "marker-file.txt"), "x");
});

afterAll(async () => {
  await Promise.all([exec.close(), appServer.close()]);
  rmSync(workDir, { recursive: true, force: true });
});

async function turn(server: TestServer, body: Record<string, unknown>): Promise<SseFrame[]> {
  return (await readSse(await server.send({ type: "user_message", work_dir: workDir, ...body }), 60_000)).frames;
}

/** Thread ids, the model server's port and durations differ between any two runs, whatever the engine. */
function normalised(frames: SseFrame[]): SseFrame[] {
  const threads = new Map<string, string>();
  return frames.map((frame) => ({
    ...frame,
    data: frame.data
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, (id) => {
        if (!threads.has(id)) threads.set(id, `<thread ${threads.size + 1}>`);
        return threads.get(id) as string;
      })
      .replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:<port>"),
  }));
}

const SCRIPTED: Array<[name: string, body: Record<string, unknown>]> = [
  ["an answer", { message: "say hello there" }],
  ["a command that fails", { message: "run echo out; exit 3" }],
  ["a command writing to stderr", { message: "run echo err >&2" }],
  ["a command in the work_dir", { message: "run pwd && ls" }],
  ["a model error", { message: "fail" }],
  ["a stream cut short", { message: "cut" }],
  ["a rejected API key", { message: "unauthorized" }],
  ["the sandbox codex applies", { message: "sandbox" }],
  // Not a command the sandbox refuses: codex then sometimes reports no command_execution item at
  // all (always, in a loop against app-server by hand), whatever the engine.
  ["a tighter sandbox", { message: "sandbox", sandbox: "read-only" }],
  ["structured output", { message: 'say {"answer":42}', output_schema: { type: "object", properties: { answer: { type: "number" } }, required: ["answer"], additionalProperties: false } }],
];

describe("exec and app-server stream the same events", () => {
  for (const [name, body] of SCRIPTED) {
    test(name, async () => {
      const id = `parity-${name.replaceAll(" ", "-")}`;
      const [a, b] = await Promise.all([turn(exec, { ...body, id }), turn(appServer, { ...body, id })]);
      expect(normalised(b)).toEqual(normalised(a));
      expect(a.length).toBeGreaterThan(3);
    }, 60_000);
  }

  test("a file edit (apply_patch): file_change items alike, the file written by each", async () => {
    const patch = "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: patched.txt\n+patched\n*** End Patch\nEOF";
    const streams: SseFrame[][] = [];
    for (const server of [exec, appServer]) {
      rmSync(join(workDir, "patched.txt"), { force: true });
      streams.push(normalised(await turn(server, { message: `run ${patch}`, id: "parity-patch" })));
      expect(readFileSync(join(workDir, "patched.txt"), "utf8")).toBe("patched\n");
    }
    expect(streams[1]).toEqual(streams[0] as SseFrame[]);
    expect(streams[0]?.some((f) => f.event === "item.completed" && f.data.includes('"type":"file_change"'))).toBe(true);
  }, 60_000);

  test("a streamed answer: app-server adds the deltas as item.updated with the text so far, and only that", async () => {
    const [a, b] = await Promise.all([turn(exec, { message: "stream one two three" }), turn(appServer, { message: "stream one two three" })]);
    const updates = b.filter((f) => f.event === "item.updated").map((f) => JSON.parse(f.data));
    // The first delta is sent at once; the rest, arriving together, are coalesced or overtaken by the completed item.
    expect(updates[0]).toEqual({ type: "item.updated", item: { id: "item_1", type: "agent_message", text: "one " } });
    for (const [i, update] of updates.entries()) {
      expect(update).toMatchObject({ type: "item.updated", item: { id: "item_1", type: "agent_message" } });
      expect("one two three".startsWith(update.item.text)).toBe(true);
      expect(update.item.text.length).toBeGreaterThan(i === 0 ? 0 : updates[i - 1].item.text.length);
    }
    const lastUpdate = b.findLastIndex((f) => f.event === "item.updated");
    const completedAt = b.findIndex((f) => f.event === "item.completed" && JSON.parse(f.data).item.type === "agent_message");
    expect(lastUpdate).toBeLessThan(completedAt);
    expect(JSON.parse(b[completedAt]?.data ?? "null").item).toEqual({ id: "item_1", type: "agent_message", text: "one two three" });
    const withoutUpdates = b.filter((f) => f.event !== "item.updated").map((f, i) => ({ ...f, id: String(i + 1) }));
    expect(normalised(withoutUpdates)).toEqual(normalised(a));
  }, 60_000);

  test("a thread continued over three turns, usage included", async () => {
    const streams: SseFrame[][][] = [];
    for (const server of [exec, appServer]) {
      const first = await turn(server, { message: "say first" });
      const threadId = doneOf(first).thread_id as string;
      const second = await turn(server, { message: "run echo second", thread_id: threadId });
      const third = await turn(server, { message: "count", thread_id: threadId });
      expect(doneOf(third)).toMatchObject({ status: "completed", thread_id: threadId, final_response: "3" });
      streams.push([first, second, third].map(normalised));
    }
    expect(streams[1]).toEqual(streams[0] as SseFrame[][]);
  }, 90_000);
});
