/**
 * The same scripted turns through a server on each engine: the SSE streams must be the same,
 * frame for frame (event, data, id), once thread ids, request ids and the model's port are
 * replaced by placeholders. This is what "a client cannot tell the engines apart" means. Only
 * where codex gives app-server more to tell (an answer's deltas, a turn's diff) does its stream
 * have more: the tests for those strip exactly that, check it on its own, and compare the rest.
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

/**
 * An app-server stream as exec would have sent it: without the `turn.diff` frames, numbered
 * again, and with `done.diff` null, which exec cannot know.
 */
function withoutDiff(frames: SseFrame[]): SseFrame[] {
  return frames
    .filter((f) => f.event !== "turn.diff")
    .map((f, i) => ({ ...f, id: String(i + 1), data: f.event === "done" ? JSON.stringify({ ...JSON.parse(f.data), diff: null }) : f.data }));
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

  test("a file edit (apply_patch): file_change items alike, the files written by each; app-server adds the diff, and only that", async () => {
    const patch =
      "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: patched.txt\n+patched\n*** Update File: edited.txt\n@@\n one\n-two\n+three\n*** End Patch\nEOF";
    const streams: SseFrame[][] = [];
    for (const server of [exec, appServer]) {
      rmSync(join(workDir, "patched.txt"), { force: true });
      writeFileSync(join(workDir, "edited.txt"), "one\ntwo\n");
      streams.push(normalised(await turn(server, { message: `run ${patch}`, id: "parity-patch" })));
      expect(readFileSync(join(workDir, "patched.txt"), "utf8")).toBe("patched\n");
      expect(readFileSync(join(workDir, "edited.txt"), "utf8")).toBe("one\nthree\n");
    }
    const [a, b] = streams as [SseFrame[], SseFrame[]];
    // git's unified diff, paths relative to the work_dir, files in order of their paths.
    const diff = [
      "diff --git a/edited.txt b/edited.txt",
      "index 814f4a422927b82f5f8a43f8fab6d3839e3983f2..4c7442bcf5acd0f1e2a95fe4f12b12c6b779b585",
      "--- a/edited.txt",
      "+++ b/edited.txt",
      "@@ -1,2 +1,2 @@",
      " one",
      "-two",
      "+three",
      "diff --git a/patched.txt b/patched.txt",
      "new file mode 100644",
      "index 0000000000000000000000000000000000000000..893adcd31e963b01dfbbcfe3ec58a008f0d81201",
      "--- /dev/null",
      "+++ b/patched.txt",
      "@@ -0,0 +1 @@",
      "+patched",
      "",
    ].join("\n");
    expect(b.filter((f) => f.event === "turn.diff").map((f) => JSON.parse(f.data))).toEqual([{ type: "turn.diff", diff }]);
    expect(doneOf(b).diff).toBe(diff);
    expect(a.some((f) => f.event === "turn.diff")).toBe(false);
    expect(doneOf(a).diff).toBeNull();
    expect(withoutDiff(b)).toEqual(a);
    expect(a.some((f) => f.event === "item.completed" && f.data.includes('"type":"file_change"'))).toBe(true);
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
