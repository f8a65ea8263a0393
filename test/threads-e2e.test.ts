/** Threads through the real server and the real codex (scripted model): list, read, rename, archive, fork, on both engines. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ENGINES } from "../src/config";
import { createLogger } from "../src/log";
import { startServer } from "../src/server";
import { appServersUnder } from "./fixtures/processes";
import { copyRollout } from "./fixtures/rollout-copies";
import { readSse, type SseFrame, sseReader } from "./fixtures/sse";
import { startTestServer, testConfig, type TestServer } from "./fixtures/test-server";
import { agentTexts, doneOf } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

type Json = Record<string, any>;

/** The items of a turn's `item.completed` events, less codex's warnings (error items), which codex does not keep with the thread. */
function completedItems(frames: SseFrame[]): Json[] {
  return frames
    .filter((frame) => frame.event === "item.completed")
    .map((frame) => JSON.parse(frame.data).item)
    .filter((item) => item.type !== "error");
}

const withoutId = ({ id: _, ...item }: Json) => item;

function usageOf(frames: SseFrame[]): Json {
  const completed = frames.find((frame) => frame.event === "turn.completed");
  if (!completed) throw new Error("the turn did not complete");
  return JSON.parse(completed.data).usage;
}

for (const engine of ENGINES) describe(`${engine} engine`, () => {
  let server: TestServer;
  let workDir: string;

  beforeAll(() => {
    server = startTestServer({ engine });
    workDir = realpathSync(mkdtempSync(join(tmpdir(), "threads-e2e-")));
  });

  afterAll(async () => {
    await server.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  async function turn(body: Json): Promise<SseFrame[]> {
    return (await readSse(await server.send({ type: "user_message", work_dir: workDir, ...body }))).frames;
  }

  async function api(path: string, init: RequestInit = {}): Promise<{ status: number; body: Json }> {
    const res = await fetch(`${server.url}${path}`, init);
    return { status: res.status, body: (await res.json()) as Json };
  }

  const json = (method: string, body: unknown): RequestInit => ({
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

  /** A thread of two turns: a command, then a thought. */
  async function twoTurnThread(): Promise<{ threadId: string; turns: SseFrame[][] }> {
    const first = await turn({ message: "run echo one" });
    const threadId = doneOf(first).thread_id as string;
    const second = await turn({ message: "think twice", thread_id: threadId });
    expect(doneOf(second).status).toBe("completed");
    return { threadId, turns: [first, second] };
  }

  /** Every thread id of GET /threads with `query`, page by page. */
  async function allPages(query: string, limit: number): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await api(`/threads?limit=${limit}${query}${cursor === null ? "" : `&cursor=${cursor}`}`);
      expect(page.status).toBe(200);
      expect(page.body.threads.length).toBeLessThanOrEqual(limit);
      ids.push(...page.body.threads.map((thread: Json) => thread.id));
      cursor = page.body.next_cursor;
    } while (cursor !== null);
    return ids;
  }

  test("a thread of two turns is listed and read back: inputs, the items of its item.completed events, usage", async () => {
    const { threadId, turns } = await twoTurnThread();
    const list = await api("/threads");
    expect(list.status).toBe(200);
    const summary = list.body.threads.find((thread: Json) => thread.id === threadId);
    expect(summary).toEqual({
      id: threadId,
      name: null,
      preview: "run echo one",
      cwd: workDir,
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/),
      updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/),
      status: "idle",
    });

    const read = await api(`/threads/${threadId}`);
    expect(read.status).toBe(200);
    const { turns: stored, next_cursor, ...rest } = read.body;
    expect(rest).toEqual(summary);
    expect(next_cursor).toBeNull();
    expect(stored.map((t: Json) => [t.input, t.status])).toEqual([
      ["run echo one", "completed"],
      ["think twice", "completed"],
    ]);
    for (const [index, frames] of turns.entries()) {
      const live = completedItems(frames);
      expect(live.map((item) => item.type)).toEqual(index === 0 ? ["command_execution", "agent_message"] : ["reasoning", "agent_message"]);
      expect(stored[index].items.map(withoutId)).toEqual(live.map(withoutId));
      expect(stored[index].items.map((item: Json) => item.id)).toEqual(live.map((_, n) => `item_${n}`));
      expect(stored[index].usage).toEqual(usageOf(frames));
      expect(stored[index].id).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  test("a rename names the thread in the list and in the search; the search finds a preview too", async () => {
    const { threadId } = await twoTurnThread();
    const renamed = await api(`/threads/${threadId}`, json("PATCH", { name: `Deploy notes ${engine}` }));
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id: threadId, name: `Deploy notes ${engine}`, preview: "run echo one", status: "idle" });
    expect((await api(`/threads/${threadId}`)).body.name).toBe(`Deploy notes ${engine}`);
    const byName = await api(`/threads?q=${encodeURIComponent(`notes ${engine}`)}`);
    expect(byName.body.threads.map((thread: Json) => thread.id)).toEqual([threadId]);
    const byPreview = await api("/threads?q=echo%20one");
    expect(byPreview.body.threads.map((thread: Json) => thread.id)).toContain(threadId);
    const inDir = await api(`/threads?cwd=${encodeURIComponent(workDir)}&limit=100`);
    expect(inDir.body.threads.map((thread: Json) => thread.id)).toContain(threadId);
    expect(inDir.body.threads.every((thread: Json) => thread.cwd === workDir)).toBe(true);
    expect((await api(`/threads?cwd=${encodeURIComponent(`${workDir}/elsewhere`)}`)).body).toEqual({ threads: [], next_cursor: null });
  });

  test("an archived thread is gone: GET, PATCH, fork, DELETE and a new turn on it answer 404, and it is not listed", async () => {
    const { threadId } = await twoTurnThread();
    const archived = await api(`/threads/${threadId}`, { method: "DELETE" });
    expect(archived).toEqual({ status: 200, body: { id: threadId, archived: true } });
    const requests = server.model.requests.length;
    const notFound = { status: 404, body: { error: { code: "thread_not_found", message: `No codex thread ${threadId} is stored here.` } } };
    expect(await api(`/threads/${threadId}`)).toEqual(notFound);
    expect(await api(`/threads/${threadId}`, json("PATCH", { name: "again" }))).toEqual(notFound);
    expect(await api(`/threads/${threadId}/fork`, { method: "POST" })).toEqual(notFound);
    expect(await api(`/threads/${threadId}`, { method: "DELETE" })).toEqual(notFound);
    const res = await server.send({ type: "user_message", message: "count", thread_id: threadId });
    expect({ status: res.status, body: await res.json() }).toEqual(notFound);
    expect(await allPages("", 100)).not.toContain(threadId);
    expect(server.model.requests.length).toBe(requests);
  });

  test("a fork carries the history, up to a turn when asked; the original is unchanged", async () => {
    const { threadId } = await twoTurnThread();
    const original = (await api(`/threads/${threadId}`)).body;
    const config = readFileSync(join(server.home.dir, "config.toml"), "utf8");
    const requests = server.model.requests.length;

    const whole = await api(`/threads/${threadId}/fork`, { method: "POST" });
    expect(whole.status).toBe(201);
    // Forking asks the model nothing and leaves config.toml alone.
    expect(server.model.requests.length).toBe(requests);
    expect(readFileSync(join(server.home.dir, "config.toml"), "utf8")).toBe(config);
    const forkId = whole.body.thread_id as string;
    expect(forkId).not.toBe(threadId);
    expect((await api(`/threads/${forkId}`)).body.turns.map((t: Json) => t.input)).toEqual(["run echo one", "think twice"]);
    expect(agentTexts(await turn({ message: "count", thread_id: forkId }))).toEqual(["3"]);
    expect(server.model.requests.at(-1)?.prompts).toEqual(["run echo one", "think twice", "count"]);
    const forked = (await api(`/threads/${forkId}`)).body;
    expect(forked.turns.map((t: Json) => t.input)).toEqual(["run echo one", "think twice", "count"]);
    // The turns it carries keep their ids and their usage.
    expect(forked.turns.slice(0, 2)).toEqual(original.turns);

    const firstTurn = original.turns[0].id;
    const partial = await api(`/threads/${threadId}/fork`, json("POST", { turn_id: firstTurn }));
    expect(partial.status).toBe(201);
    expect(agentTexts(await turn({ message: "count", thread_id: partial.body.thread_id }))).toEqual(["2"]);
    expect(server.model.requests.at(-1)?.prompts).toEqual(["run echo one", "count"]);

    expect((await api(`/threads/${threadId}`)).body).toEqual(original);
    // A fork's turns run in the sandbox they ask for, not in the one codex forked it with.
    expect(agentTexts(await turn({ message: "sandbox", thread_id: forkId }))).toEqual(["danger-full-access"]);
    const unknownTurn = "01a213ec-28be-7ba3-89bc-000000000000";
    expect(await api(`/threads/${threadId}/fork`, json("POST", { turn_id: unknownTurn }))).toEqual({
      status: 404,
      body: { error: { code: "turn_not_found", message: `Thread ${threadId} has no turn ${unknownTurn}.` } },
    });
  });

  test("cursors page through threads and turns without repeats or gaps", async () => {
    for (const n of [1, 2, 3]) await turn({ message: `say page ${n}` });
    const everything = (await api("/threads?limit=100")).body;
    expect(everything.next_cursor).toBeNull();
    const ids = everything.threads.map((thread: Json) => thread.id);
    expect(ids.length).toBeGreaterThanOrEqual(3);
    const created = everything.threads.map((thread: Json) => thread.created_at);
    expect(created).toEqual([...created].sort().reverse());
    expect(await allPages("", 2)).toEqual(ids);
    expect(await allPages("", 1)).toEqual(ids);

    const first = await turn({ message: "say one" });
    const threadId = doneOf(first).thread_id as string;
    for (const text of ["say two", "say three"]) await turn({ message: text, thread_id: threadId });
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const page = await api(`/threads/${threadId}?turns_limit=2${cursor === null ? "" : `&cursor=${cursor}`}`);
      expect(page.status).toBe(200);
      pages.push(page.body.turns.map((t: Json) => t.input));
      cursor = page.body.next_cursor;
    } while (cursor !== null);
    expect(pages).toEqual([["say two", "say three"], ["say one"]]);
  });

  test("bad ids, cursors and limits are refused in the usual shape, and nothing reaches the model", async () => {
    const threadId = doneOf(await turn({ message: "say valid" })).thread_id as string;
    const requests = server.model.requests.length;
    const unknown = "01a213ec-28be-7ba3-89bc-000000000000";
    expect(await api(`/threads/${unknown}`)).toEqual({
      status: 404,
      body: { error: { code: "thread_not_found", message: `No codex thread ${unknown} is stored here.` } },
    });
    expect(await api("/threads/not-a-thread")).toEqual({
      status: 422,
      body: { error: { code: "invalid_request", message: "id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e" } },
    });
    const badCursor = { status: 400, body: { error: { code: "invalid_cursor", message: "cursor: must be a next_cursor given for the same query." } } };
    // Not a cursor at all, and one that decodes but that codex refuses.
    for (const cursor of ["%25%25%25", Buffer.from("not codex's").toString("base64url")]) {
      expect(await api(`/threads?cursor=${cursor}`)).toEqual(badCursor);
      expect(await api(`/threads/${threadId}?cursor=${cursor}`)).toEqual(badCursor);
    }
    // Another thread's cursor.
    const other = doneOf(await turn({ message: "say other" })).thread_id as string;
    await turn({ message: "say more", thread_id: other });
    const otherCursor = (await api(`/threads/${other}?turns_limit=1`)).body.next_cursor;
    expect(await api(`/threads/${threadId}?cursor=${otherCursor}`)).toEqual(badCursor);
    for (const limit of ["0", "101", "ten"]) {
      expect(await api(`/threads?limit=${limit}`)).toEqual({
        status: 422,
        body: { error: { code: "invalid_request", message: "limit: must be a whole number from 1 to 100" } },
      });
    }
    expect(server.model.requests.length).toBe(requests + 2);
  });

  test("a thread with a running turn reads as running, its newest turn in progress; it cannot be archived or forked meanwhile", async () => {
    const threadId = doneOf(await turn({ message: "say before" })).thread_id as string;
    const running = sseReader(await server.send({ type: "user_message", message: "sleep 60000 busy", thread_id: threadId, id: `busy-${engine}` }));
    try {
      await running.until((frame) => frame.event === "turn.started");
      const read = await waitFor("the running turn in the thread's history", async () => {
        const { body } = await api(`/threads/${threadId}`);
        return body.turns[1]?.input === "sleep 60000 busy" ? body : undefined;
      });
      expect(read.status).toBe("running");
      expect(read.turns.map((t: Json) => [t.input, t.status])).toEqual([
        ["say before", "completed"],
        ["sleep 60000 busy", "in_progress"],
      ]);
      expect((await api("/threads?limit=100")).body.threads.find((thread: Json) => thread.id === threadId).status).toBe("running");
      const busy = {
        status: 409,
        body: { error: { code: "thread_busy", message: `thread ${threadId} is running turn busy-${engine}; a thread runs one turn at a time` } },
      };
      expect(await api(`/threads/${threadId}`, { method: "DELETE" })).toEqual(busy);
      expect(await api(`/threads/${threadId}/fork`, { method: "POST" })).toEqual(busy);
    } finally {
      // Also when an expectation failed: a turn left running would hold up the server's shutdown.
      await fetch(`${server.url}/runs/busy-${engine}`, { method: "DELETE" });
    }
    expect(doneOf((await running.rest()).frames).status).toBe("cancelled");
    const after = (await api(`/threads/${threadId}`)).body;
    expect(after.status).toBe("idle");
    expect(after.turns.map((t: Json) => t.status)).toEqual(["completed", "interrupted"]);
    // Reading it disturbed nothing: the thread goes on (app-server tells the model of the interruption).
    expect(doneOf(await turn({ message: "count", thread_id: threadId })).status).toBe("completed");
    const prompts = server.model.requests.at(-1)?.prompts ?? [];
    expect([...prompts.slice(0, 2), prompts.at(-1)]).toEqual(["say before", "sleep 60000 busy", "count"]);
  });

  test("a rollout copied into CODEX_HOME is read by its id (codex rebuilds its history), then listed, and takes turns", async () => {
    const { threadId } = await twoTurnThread();
    const copy = copyRollout(server.home.dir, threadId, Date.now() + 60_000);
    const requests = server.model.requests.length;
    const read = await api(`/threads/${copy}`);
    expect(read.status).toBe(200);
    expect(server.model.requests.length).toBe(requests);
    expect(read.body.turns.map((t: Json) => t.input)).toEqual(["run echo one", "think twice"]);
    expect((await api("/threads")).body.threads[0]).toMatchObject({ id: copy, preview: "run echo one" });
    // Rebuilding its history loaded it in no process that a turn would find in the way.
    expect(agentTexts(await turn({ message: "count", thread_id: copy }))).toEqual(["3"]);
  });

  test("threads that the other engine started on the same CODEX_HOME are listed and read", async () => {
    const otherEngine = ENGINES.find((name) => name !== engine);
    const other = startServer(
      testConfig({ ...(process.env as Record<string, string>), ...server.home.env }, { engine: otherEngine }),
      createLogger("error", () => {}),
    );
    try {
      const res = await fetch(`${other.url}/messages`, json("POST", { type: "user_message", message: "say elsewhere", work_dir: workDir }));
      const threadId = doneOf((await readSse(res)).frames).thread_id as string;
      const listed = (await api("/threads")).body.threads.find((thread: Json) => thread.id === threadId);
      expect(listed).toMatchObject({ preview: "say elsewhere", cwd: workDir, status: "idle" });
      const read = (await api(`/threads/${threadId}`)).body;
      expect(read.turns.map((t: Json) => [t.input, t.items.map((item: Json) => item.text)])).toEqual([["say elsewhere", ["elsewhere"]]]);
    } finally {
      await other.shutdown();
    }
  });
});

test("the exec engine's app-server for threads starts at the first request, counts as a codex process, and stops with the server", async () => {
  const server = startTestServer({ engine: "exec" });
  try {
    const before = new Set(appServersUnder(process.pid));
    expect(server.running.engine.activeProcesses?.()).toBe(0);
    expect((await fetch(`${server.url}/threads`)).status).toBe(200);
    const started = appServersUnder(process.pid).filter((pid) => !before.has(pid));
    expect(started).toHaveLength(1);
    expect(server.running.engine.activeProcesses?.()).toBe(1);
    await server.running.shutdown();
    expect(appServersUnder(process.pid)).not.toContain(started[0]);
    expect(server.running.engine.activeProcesses?.()).toBe(0);
  } finally {
    await server.close();
  }
});
