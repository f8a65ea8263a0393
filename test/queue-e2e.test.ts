/** `on_busy` through the real server and the real codex (scripted model), on each engine: waiting turns and interrupts. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ENGINES } from "../src/config";
import { readSse, type SseFrame, sseReader } from "./fixtures/sse";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { agentTexts, doneOf } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

const json = (frame: SseFrame | undefined) => JSON.parse(frame?.data ?? "null");

for (const engine of ENGINES) describe(`${engine} engine`, () => {
  let server: TestServer;
  const REATTACH_GRACE_MS = 1_000;

  beforeAll(() => {
    server = startTestServer({ engine, reattachGraceMs: REATTACH_GRACE_MS });
  });
  afterAll(() => server.close());

  const send = (body: Record<string, unknown>, init?: RequestInit) => server.send({ type: "user_message", ...body }, init);
  const summary = async (id: string) => (await (await fetch(`${server.url}/runs/${id}`)).json()) as Record<string, unknown>;
  const cancel = (id: string) => fetch(`${server.url}/runs/${id}`, { method: "DELETE" });
  /** A new thread, with one turn behind it. */
  const newThread = async () => doneOf((await readSse(await send({ message: "say first" }))).frames).thread_id as string;
  /** A slow turn on `thread`, read until codex has started it. */
  const running = async (thread: string, id: string, message = "sleep 60000 slow") => {
    const reader = sseReader(await send({ message, thread_id: thread, id }));
    await reader.until((f) => f.event === "turn.started");
    return reader;
  };
  const prompted = (prefix: string) => server.model.requests.some((request) => request.prompts.some((prompt) => prompt.startsWith(prefix)));

  test("enqueue: the turn waits for the running one, then runs on the thread it left, and sees its history", async () => {
    const thread = await newThread();
    const first = await running(thread, "q-first", "sleep 2000 slow");
    const res = await send({ message: "count", thread_id: thread, id: "q-second", on_busy: "enqueue" });
    expect(res.status).toBe(200);
    const second = sseReader(res);
    const queued = await second.until(() => true);
    // Had the first turn ended already, the second would not have waited: it did.
    expect(json(queued.frames[0])).toEqual({ type: "run.queued", position: 1 });
    expect(await summary("q-second")).toMatchObject({ status: "queued", queue_position: 1, thread_id: thread, finished_at: null });
    expect(await (await fetch(`${server.url}/metrics`)).text()).toContain("\ncodex_turns_queued 1\n");
    expect(prompted("count")).toBe(false);

    const frames = (await second.rest()).frames;
    expect(doneOf((await first.rest()).frames)).toMatchObject({ status: "completed", final_response: "slow" });
    expect(frames.filter((f) => f.event === "run.queued")).toHaveLength(1);
    expect(frames[1]?.event).toBe("thread.started");
    expect(agentTexts(frames)).toEqual(["3"]);
    expect(server.model.requests.at(-1)?.prompts).toEqual(["say first", "sleep 2000 slow", "count"]);
    expect(doneOf(frames)).toMatchObject({ status: "completed", thread_id: thread, request_id: "q-second", final_response: "3" });
    expect(await summary("q-second")).toMatchObject({ status: "completed", queue_position: null });
  }, 30_000);

  test("a thread whose first turn still runs (exec has not stored it yet): busy, not unknown; a turn enqueued on it runs next", async () => {
    const first = sseReader(await send({ message: "sleep 2000 first", id: "f-first" }));
    const thread = json((await first.until((f) => f.event === "thread.started")).frames[0]).thread_id as string;
    const rejected = await send({ message: "count", thread_id: thread });
    expect(rejected.status).toBe(409);
    expect(((await rejected.json()) as { error: { code: string } }).error.code).toBe("thread_busy");
    const res = await send({ message: "count", thread_id: thread, id: "f-second", on_busy: "enqueue" });
    expect(res.status).toBe(200);
    const frames = (await readSse(res)).frames;
    expect(json(frames[0])).toEqual({ type: "run.queued", position: 1 });
    expect(doneOf((await first.rest()).frames).status).toBe("completed");
    expect(agentTexts(frames)).toEqual(["2"]);
    expect(doneOf(frames)).toMatchObject({ status: "completed", thread_id: thread });
  }, 30_000);

  test("a ninth waiting turn gets 429; waiting turns cancelled by user_cancel, DELETE or their client going away end cancelled, never reaching the model", async () => {
    const thread = await newThread();
    const first = await running(thread, "n-first");
    const waiting = [];
    for (let n = 1; n <= 8; n++) {
      const res = await send({ message: `say never ${n}`, thread_id: thread, id: `n-${n}`, on_busy: "enqueue" });
      expect(res.status).toBe(200);
      const reader = sseReader(res);
      expect(json((await reader.until(() => true)).frames[0])).toEqual({ type: "run.queued", position: n });
      waiting.push(reader);
    }
    const ninth = await send({ message: "say never 9", thread_id: thread, id: "n-9", on_busy: "enqueue" });
    expect(ninth.status).toBe(429);
    expect(ninth.headers.get("retry-after")).toBe("5");
    expect(await ninth.json()).toEqual({
      error: { code: "queue_full", message: `thread ${thread} already has 8 turns waiting; try again later` },
    });

    expect(await (await server.send({ type: "user_cancel", id: "n-1" })).json()).toEqual({ cancelled: "n-1" });
    expect(await (await cancel("n-2")).json()).toEqual({ cancelled: "n-2" });
    await waiting[2]?.cancel();
    // The client gone, its turn waits for it for the reattach grace, then is cancelled.
    expect(await summary("n-3")).toMatchObject({ status: "queued" });
    await waitFor("n-3 to be cancelled", async () => (await summary("n-3")).status === "cancelled", REATTACH_GRACE_MS + 5_000);
    for (const [n, reader] of waiting.entries()) {
      if (n === 2) continue;
      if (n > 2) await cancel(`n-${n + 1}`);
      const frames = (await reader.rest()).frames;
      expect(frames.every((f) => f.event === "run.queued" || f.event === "done")).toBe(true);
      expect(doneOf(frames)).toEqual({
        status: "cancelled",
        thread_id: thread,
        request_id: `n-${n + 1}`,
        usage: null,
        error: "turn cancelled",
        final_response: null,
        replaces: null,
        diff: null,
      });
    }
    await cancel("n-first");
    expect(doneOf((await first.rest()).frames).status).toBe("cancelled");
    expect(prompted("say never")).toBe(false);
  }, 30_000);

  test("a waiting turn whose client went away and came back within the reattach grace runs, every event once", async () => {
    const thread = await newThread();
    const first = await running(thread, "g-first", "sleep 2000 slow");
    const controller = new AbortController();
    const res = await send({ message: "say came back", thread_id: thread, id: "g-second", on_busy: "enqueue" }, { signal: controller.signal });
    const before = (await sseReader(res).until(() => true)).frames;
    controller.abort();
    const again = await fetch(`${server.url}/runs/g-second/events`, { headers: { "last-event-id": before.at(-1)?.id ?? "" } });
    const after = (await readSse(again)).frames;
    expect([...before, ...after].map((f) => Number(f.id))).toEqual([...before, ...after].map((_, i) => i + 1));
    expect(agentTexts(after)).toEqual(["came back"]);
    expect(doneOf(after)).toMatchObject({ status: "completed", thread_id: thread });
    expect(doneOf((await first.rest()).frames).status).toBe("completed");
  }, 30_000);

  test("interrupt: the running turn ends cancelled, then the new one runs on the same thread", async () => {
    const thread = await newThread();
    const first = await running(thread, "i-first");
    const res = await send({ message: "say interrupted you", thread_id: thread, id: "i-second", on_busy: "interrupt" });
    expect(res.status).toBe(200);
    const frames = (await readSse(res)).frames;
    expect(doneOf((await first.rest()).frames)).toMatchObject({ status: "cancelled", request_id: "i-first" });
    expect(frames[0]?.event).toBe("thread.started");
    expect(agentTexts(frames)).toEqual(["interrupted you"]);
    expect(doneOf(frames)).toMatchObject({ status: "completed", thread_id: thread, request_id: "i-second", replaces: "i-first" });
    expect(server.model.requests.at(-1)?.prompts.at(-1)).toBe("say interrupted you");
  }, 30_000);

  test("a refused interrupt leaves the running turn running", async () => {
    const thread = await newThread();
    const first = await running(thread, "r-first");
    const other = sseReader(await send({ message: "sleep 60000 other", id: "r-other" }));
    await other.until((f) => f.event === "turn.started");
    try {
      const res = await send({ message: "say never interrupting", thread_id: thread, id: "r-other", on_busy: "interrupt" });
      expect(res.status).toBe(409);
      expect(await res.json()).toEqual({ error: { code: "id_in_use", message: "a turn with id r-other is already running" } });
      expect(await summary("r-first")).toMatchObject({ status: "running" });
      expect(prompted("say never interrupting")).toBe(false);
    } finally {
      for (const id of ["r-first", "r-other"]) await cancel(id);
    }
    for (const reader of [first, other]) expect(doneOf((await reader.rest()).frames).status).toBe("cancelled");
  }, 30_000);
});
