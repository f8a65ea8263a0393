/** `on_busy` through `createApp` with a fake engine: waiting turns, their order and limits, and interrupting. */
import { describe, expect, test } from "bun:test";
import { EngineBusyError, type EngineEvent, type TurnRequest } from "../src/engine/types";
import { setup } from "./fixtures/app-setup";
import { fakeEngine, USAGE } from "./fixtures/fake-engine";
import { parseSse, sseReader } from "./fixtures/sse";
import { waitFor } from "./fixtures/wait-for";

const THREAD = "01a213ec-28be-7ba3-89bc-98f1fe7e9e8e";
const usage = JSON.stringify(USAGE);

/**
 * Turns that answer their message. One whose message starts with `hold` waits, after
 * thread.started, until `release(message)` (or its stop); with `fail` in it, it then fails.
 * A turn without thread_id starts the thread `thread-<message>`.
 */
function threadEngine() {
  const held = new Map<string, () => void>();
  const engine = fakeEngine(async function* (request: TurnRequest): AsyncGenerator<EngineEvent> {
    yield { type: "thread.started", thread_id: request.threadId ?? `thread-${request.input}` };
    if (request.input.startsWith("hold")) {
      await new Promise<void>((resolve) => {
        held.set(request.input, resolve);
        request.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      if (request.signal.aborted) throw new Error("The operation was aborted.");
    }
    yield { type: "turn.started" };
    if (request.input.includes("fail")) {
      yield { type: "turn.failed", error: { message: "scripted failure" } };
      throw new Error("Codex Exec exited with code 1");
    }
    yield { type: "item.completed", item: { id: "item_0", type: "agent_message", text: request.input } };
    yield { type: "turn.completed", usage: USAGE };
  });
  const release = async (input: string) => (await waitFor(`${input} to be held`, () => held.get(input)))();
  return { engine, release, inputs: () => engine.calls.map((call) => call.input) };
}

type Setup = ReturnType<typeof setup>;
const message = (post: Setup["post"], id: string, text: string, extra: Record<string, unknown> = {}) =>
  post({ type: "user_message", message: text, id, thread_id: THREAD, ...extra });

/** A turn holding THREAD, read until codex has started it. */
async function holding(post: Setup["post"], id = "A", text = "hold A") {
  const reader = sseReader(await message(post, id, text));
  await reader.until((f) => f.event === "thread.started");
  return reader;
}

async function queued(post: Setup["post"], id: string, text: string) {
  const res = await message(post, id, text, { on_busy: "enqueue" });
  expect(res.status).toBe(200);
  const reader = sseReader(res);
  await reader.until((f) => f.event === "run.queued");
  return reader;
}

const places = (...positions: number[]) => positions.map((position) => ({ type: "run.queued", position }));
const data = (frames: Array<{ data: string }>) => frames.map((f) => JSON.parse(f.data));
const doneData = (frames: Array<{ event: string; data: string }>) => JSON.parse(frames.at(-1)?.data ?? "null");
const cancelledDone = (id: string) => ({
  status: "cancelled",
  thread_id: THREAD,
  request_id: id,
  usage: null,
  error: "turn cancelled",
  final_response: null,
  replaces: null,
  diff: null,
});

describe("on_busy: enqueue", () => {
  test("the turn waits for the running one, then runs: its stream opens with run.queued, position 1", async () => {
    const { engine, release, inputs } = threadEngine();
    const { app, post } = setup(engine);
    const a = await holding(post);
    const res = await message(post, "B", "after A", { on_busy: "enqueue" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("B");
    const b = sseReader(res);
    await b.until((f) => f.event === "run.queued");
    expect(await (await app.request("/runs/B")).json()).toEqual({
      id: "B",
      thread_id: THREAD,
      status: "queued",
      queue_position: 1,
      started_at: expect.any(String),
      finished_at: null,
      usage: null,
      replaces: null,
    });
    expect(inputs()).toEqual(["hold A"]);
    await release("hold A");
    expect((await b.rest()).raw).toBe(
      "event: run.queued\n" +
        'data: {"type":"run.queued","position":1}\n' +
        "id: 1\n\n" +
        "event: thread.started\n" +
        `data: {"type":"thread.started","thread_id":"${THREAD}"}\n` +
        "id: 2\n\n" +
        "event: turn.started\n" +
        'data: {"type":"turn.started"}\n' +
        "id: 3\n\n" +
        "event: item.completed\n" +
        'data: {"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"after A"}}\n' +
        "id: 4\n\n" +
        "event: turn.completed\n" +
        `data: {"type":"turn.completed","usage":${usage}}\n` +
        "id: 5\n\n" +
        "event: done\n" +
        `data: {"status":"completed","thread_id":"${THREAD}","request_id":"B","usage":${usage},"error":null,"final_response":"after A","replaces":null,"diff":null}\n` +
        "id: 6\n\n",
    );
    expect(doneData((await a.rest()).frames).status).toBe("completed");
    expect(engine.calls.map((call) => [call.input, call.threadId])).toEqual([
      ["hold A", THREAD],
      ["after A", THREAD],
    ]);
    expect((await (await app.request("/runs/B")).json()) as object).toMatchObject({ status: "completed", queue_position: null });
  });

  test("first come first served; each waiting turn hears of its new place; cancelled ones (DELETE, user_cancel, the client gone) leave theirs and never run", async () => {
    const { engine, release, inputs } = threadEngine();
    const { app, post, runs } = setup(engine);
    const a = await holding(post);
    const b = await queued(post, "B", "hold B");
    const c = await queued(post, "C", "never C");
    const d = await queued(post, "D", "never D");
    const e = await queued(post, "E", "never E");
    const f = await queued(post, "F", "after all");
    expect(data((await f.until(() => true)).frames)).toEqual([{ type: "run.queued", position: 5 }]);

    expect(await (await app.request("/runs/C", { method: "DELETE" })).json()).toEqual({ cancelled: "C" });
    expect(data((await c.rest()).frames)).toEqual([...places(2), cancelledDone("C")]);
    expect(await (await post({ type: "user_cancel", id: "D" })).json()).toEqual({ cancelled: "D" });
    expect(data((await d.rest()).frames)).toEqual([...places(3, 2), cancelledDone("D")]);
    // The client of E goes away; without a reattach grace its turn is cancelled at once.
    await e.cancel();
    await waitFor("E to end", () => runs.get("E")?.running === false);
    expect(data(parseSse(await (await app.request("/runs/E/events")).text()).frames)).toEqual([...places(4, 3, 2), cancelledDone("E")]);

    await f.until((frame) => frame.data === '{"type":"run.queued","position":2}');
    await release("hold A");
    await f.until((frame) => frame.data === '{"type":"run.queued","position":1}');
    await release("hold B");
    const frames = (await f.rest()).frames;
    expect(frames.map((frame) => frame.event)).toEqual([
      ...Array(5).fill("run.queued"),
      "thread.started",
      "turn.started",
      "item.completed",
      "turn.completed",
      "done",
    ]);
    expect(data(frames.slice(0, 5))).toEqual(places(5, 4, 3, 2, 1));
    expect(doneData(frames)).toMatchObject({ status: "completed", final_response: "after all" });
    for (const reader of [a, b]) expect(doneData((await reader.rest()).frames).status).toBe("completed");
    expect(inputs()).toEqual(["hold A", "hold B", "after all"]);
  });

  test("at most 8 turns wait for a thread: the ninth gets 429 queue_full with Retry-After, and was never a run", async () => {
    const { engine, inputs } = threadEngine();
    const { app, post, runs } = setup(engine);
    const a = await holding(post);
    const waiting = [];
    for (let n = 1; n <= 8; n++) waiting.push(await queued(post, `W${n}`, `waiting ${n}`));
    const res = await message(post, "W9", "one too many", { on_busy: "enqueue" });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("5");
    expect(await res.json()).toEqual({
      error: { code: "queue_full", message: `thread ${THREAD} already has 8 turns waiting; try again later` },
    });
    expect((await app.request("/runs/W9")).status).toBe(404);
    // Rejecting (the default) is still a 409, whatever waits.
    expect((await message(post, "R", "rejected")).status).toBe(409);
    // A place that frees up is taken again.
    await app.request("/runs/W8", { method: "DELETE" });
    await waitFor("W8 to leave the queue", () => runs.get("W8")?.running === false);
    const again = await queued(post, "W9", "now there is room");
    runs.stopAll("cancelled");
    for (const reader of [a, ...waiting, again]) expect(doneData((await reader.rest()).frames).status).toBe("cancelled");
    expect(inputs()).toEqual(["hold A"]);
  });

  test("a waiting turn takes no slot of --max-concurrent-turns; it starts in the one its predecessor leaves", async () => {
    const { engine, release, inputs } = threadEngine();
    const { post, runs } = setup(engine, {}, 1);
    const a = await holding(post);
    const b = await queued(post, "B", "hold B");
    const elsewhere = async () => (await post({ type: "user_message", message: "elsewhere" })).status;
    expect(await elsewhere()).toBe(429);
    // A free thread does not wait for a slot.
    expect((await post({ type: "user_message", message: "elsewhere", thread_id: "01a213ec-28be-7ba3-89bc-000000000001", on_busy: "enqueue" })).status).toBe(429);
    expect([runs.size, runs.queued]).toEqual([1, 1]);
    await release("hold A");
    await b.until((f) => f.event === "thread.started");
    expect([runs.size, runs.queued]).toEqual([1, 0]);
    expect(await elsewhere()).toBe(429);
    await release("hold B");
    for (const reader of [a, b]) expect(doneData((await reader.rest()).frames).status).toBe("completed");
    expect(await elsewhere()).toBe(200);
    expect(inputs()).toEqual(["hold A", "hold B", "elsewhere"]);
  });

  test("a thread that the engine has not stored yet, but a turn runs on, is busy, not unknown", async () => {
    // Like exec, which stores a new thread only as its first turn ends.
    const { engine, release, inputs } = threadEngine();
    const { post } = setup(Object.assign(fakeEngine((request) => engine.runTurn({ ...request, threadId: request.threadId ?? THREAD })), { threadExists: () => false }));
    const first = sseReader(await post({ type: "user_message", message: "hold new", id: "A" }));
    await first.until((f) => f.event === "thread.started");
    const unknown = await post({ type: "user_message", message: "x", thread_id: "01a213ec-28be-7ba3-89bc-000000000002" });
    expect(unknown.status).toBe(404);
    const rejected = await message(post, "R", "rejected");
    expect(rejected.status).toBe(409);
    expect(((await rejected.json()) as { error: { code: string } }).error.code).toBe("thread_busy");
    const waiting = await queued(post, "B", "after it");
    await release("hold new");
    expect(doneData((await waiting.rest()).frames)).toMatchObject({ status: "completed", thread_id: THREAD });
    await first.rest();
    expect(inputs()).toEqual(["hold new", "after it"]);
  });

  test("a waiting turn runs after a predecessor that failed", async () => {
    const { engine, release, inputs } = threadEngine();
    const { post } = setup(engine);
    const a = await holding(post, "A", "hold and fail");
    const b = await queued(post, "B", "after that");
    await release("hold and fail");
    expect(doneData((await a.rest()).frames)).toMatchObject({ status: "failed", error: "scripted failure" });
    expect(doneData((await b.rest()).frames)).toMatchObject({ status: "completed", final_response: "after that" });
    expect(inputs()).toEqual(["hold and fail", "after that"]);
  });

  test("a waiting run replays and follows by Last-Event-ID like any other", async () => {
    const { engine, release } = threadEngine();
    const { app, post } = setup(engine);
    const a = await holding(post);
    const b = await queued(post, "B", "after A");
    const fromStart = await app.request("/runs/B/events");
    const afterQueued = await app.request("/runs/B/events", { headers: { "last-event-id": "1" } });
    await release("hold A");
    const all = (await b.rest()).frames;
    expect(parseSse(await fromStart.text()).frames).toEqual(all);
    expect(parseSse(await afterQueued.text()).frames).toEqual(all.slice(1));
    expect(all.map((f) => f.id)).toEqual(["1", "2", "3", "4", "5", "6"]);
    await a.rest();
  });

  test("at shutdown the waiting turns end cancelled at once, never started; the running one goes on", async () => {
    const { engine, release, inputs } = threadEngine();
    const { post, runs } = setup(engine);
    const a = await holding(post);
    const b = await queued(post, "B", "never B");
    runs.close();
    expect(data((await b.rest()).frames)).toEqual([{ type: "run.queued", position: 1 }, cancelledDone("B")]);
    expect(runs.get("A")?.running).toBe(true);
    expect(await runs.whenIdle(20)).toBe(false);
    await release("hold A");
    expect(doneData((await a.rest()).frames).status).toBe("completed");
    expect(await runs.whenIdle(1_000)).toBe(true);
    expect(inputs()).toEqual(["hold A"]);
  });

  test("user_edit of a waiting turn is refused: its thread runs another", async () => {
    const { engine } = threadEngine();
    const { post, runs } = setup(engine);
    const a = await holding(post);
    const b = await queued(post, "B", "never B");
    const res = await post({ type: "user_edit", id: "B", message: "edited" });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({
      error: { code: "thread_busy", message: `thread ${THREAD} is running turn A; a thread runs one turn at a time` },
    });
    expect(runs.get("B")?.summary().status).toBe("queued");
    runs.stopAll("cancelled");
    await Promise.all([a.rest(), b.rest()]);
  });

  test("an engine that refuses a waiting turn once it may run: its open stream ends with done, status error", async () => {
    let busy = false;
    const { engine: inner, release } = threadEngine();
    const engine = Object.assign(
      fakeEngine((request) => {
        if (busy) throw new EngineBusyError("codex app-server is overloaded: Server overloaded; retry later.", 5);
        return inner.runTurn(request);
      }),
      { refusesWhenBusy: true },
    );
    const { app, post } = setup(engine);
    const a = await holding(post);
    const b = await queued(post, "B", "refused");
    busy = true;
    await release("hold A");
    expect(data((await b.rest()).frames)).toEqual([
      { type: "run.queued", position: 1 },
      { ...cancelledDone("B"), status: "error", error: "codex app-server is overloaded: Server overloaded; retry later." },
    ]);
    expect((await app.request("/runs/B")).status).toBe(200);
    await a.rest();
  });
});

describe("on_busy: interrupt", () => {
  test("the running turn ends cancelled, the new one runs on its thread in its place, ahead of the waiting ones", async () => {
    const { engine, inputs } = threadEngine();
    const { post } = setup(engine);
    const a = await holding(post);
    const w = await queued(post, "W", "waited");
    const res = await message(post, "I", "interrupting", { on_busy: "interrupt" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("I");
    expect(doneData(parseSse(await res.text()).frames)).toEqual({
      status: "completed",
      thread_id: THREAD,
      request_id: "I",
      usage: USAGE,
      error: null,
      final_response: "interrupting",
      replaces: "A",
      diff: null,
    });
    expect(doneData((await a.rest()).frames)).toEqual(cancelledDone("A"));
    const waited = (await w.rest()).frames;
    expect(data(waited.slice(0, 1))).toEqual([{ type: "run.queued", position: 1 }]);
    expect(doneData(waited)).toMatchObject({ status: "completed", final_response: "waited" });
    expect(engine.calls.map((call) => [call.input, call.threadId])).toEqual([
      ["hold A", THREAD],
      ["interrupting", THREAD],
      ["waited", THREAD],
    ]);
    expect(inputs()).toEqual(["hold A", "interrupting", "waited"]);
  });

  test("a refused interrupt leaves the running turn running: the id in use, then shutting down", async () => {
    const { engine, release, inputs } = threadEngine();
    const { post, runs } = setup(engine);
    const a = await holding(post);
    const other = sseReader(await post({ type: "user_message", message: "hold other", id: "other" }));
    await other.until((f) => f.event === "thread.started");
    const inUse = await message(post, "other", "never", { on_busy: "interrupt" });
    expect(inUse.status).toBe(409);
    expect(await inUse.json()).toEqual({ error: { code: "id_in_use", message: "a turn with id other is already running" } });
    runs.close();
    const closing = await message(post, "C", "never", { on_busy: "interrupt" });
    expect(closing.status).toBe(503);
    expect(((await closing.json()) as { error: { code: string } }).error.code).toBe("shutting_down");
    expect(runs.get("A")?.running).toBe(true);
    expect(engine.calls[0]?.signal.aborted).toBe(false);
    await release("hold A");
    await release("hold other");
    for (const reader of [a, other]) expect(doneData((await reader.rest()).frames).status).toBe("completed");
    expect(inputs()).toEqual(["hold A", "hold other"]);
  });

  test("on a thread that runs nothing, or without thread_id, interrupt and enqueue just run the turn", async () => {
    const { engine } = threadEngine();
    const { post } = setup(engine);
    for (const on_busy of ["interrupt", "enqueue", "reject"]) {
      for (const body of [{ thread_id: THREAD }, {}]) {
        const frames = parseSse(await (await post({ type: "user_message", message: `via ${on_busy}`, on_busy, ...body })).text()).frames;
        expect(frames.map((f) => f.event)).toEqual(["thread.started", "turn.started", "item.completed", "turn.completed", "done"]);
        expect(doneData(frames)).toMatchObject({ status: "completed", replaces: null });
      }
    }
  });
});
