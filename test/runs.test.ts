import { describe, expect, test } from "bun:test";
import type { Engine, EngineEvent, ThreadEvent, TurnRequest } from "../src/engine/types";
import { createLogger } from "../src/log";
import { EventLog, type RunEvent } from "../src/runs/event-log";
import { type RegistryOptions, RunIdInUseError, RunLimitError, RunRegistry, RunsClosedError, ThreadBusyError } from "../src/runs/registry";
import type { DoneData, Run } from "../src/runs/run";
import { completedTurn, fakeEngine, hangingTurn, heldTurn, USAGE } from "./fixtures/fake-engine";
import { waitFor } from "./fixtures/wait-for";

const quiet = createLogger("off");
const turn = { input: "hi", workDir: "/tmp" };
const registry = (engine: Engine, options: Partial<RegistryOptions> = {}) =>
  new RunRegistry(engine, quiet, { maxConcurrent: 10, turnTimeoutMs: undefined, ...options });
const forever = () => new AbortController().signal;

/** Every event of a reading, whatever batches they came in. */
async function collect(batches: AsyncIterable<RunEvent[]>): Promise<RunEvent[]> {
  const all: RunEvent[] = [];
  for await (const batch of batches) all.push(...batch);
  return all;
}

const all = (run: Run) => collect(run.watch(0, forever()));

function doneOf(events: RunEvent[]): DoneData {
  const last = events.at(-1);
  expect(last?.event).toBe("done");
  return JSON.parse(last?.data ?? "{}");
}

describe("a run's done status", () => {
  const failedTurn = async function* (): AsyncGenerator<ThreadEvent> {
    yield { type: "thread.started", thread_id: "t" };
    yield { type: "error", message: "boom" };
    yield { type: "turn.failed", error: { message: "boom" } };
    throw new Error("Codex Exec exited with code 1");
  };
  const cases: Array<[string, () => AsyncIterable<ThreadEvent>, Partial<DoneData>]> = [
    ["turn.completed -> completed, with usage and the last message", () => completedTurn("hi", "t"), { status: "completed", usage: USAGE, error: null, final_response: "hi" }],
    ["turn.failed, then codex exits 1 -> failed with the model's reason", failedTurn, { status: "failed", usage: null, error: "boom" }],
    [
      "a throw before any outcome -> error",
      async function* () {
        yield { type: "thread.started", thread_id: "t" } satisfies ThreadEvent;
        throw new Error("spawn failed");
      },
      { status: "error", error: "spawn failed" },
    ],
    [
      "codex ends without a turn result -> error",
      async function* () {
        yield { type: "thread.started", thread_id: "t" } satisfies ThreadEvent;
      },
      { status: "error", error: "codex ended without finishing the turn" },
    ],
  ];

  for (const [name, script, expected] of cases) {
    test(name, async () => {
      const events = await all(registry(fakeEngine(script)).start("r1", turn));
      expect(events.map((event) => event.id)).toEqual(events.map((_, index) => index + 1));
      expect(doneOf(events)).toEqual({
        status: "error",
        thread_id: "t",
        request_id: "r1",
        usage: null,
        error: null,
        final_response: null,
        replaces: null,
        diff: null,
        ...expected,
      });
    });
  }

  test("with an output schema, final_response is the JSON of the last message", async () => {
    const run = registry(fakeEngine(() => completedTurn('{"answer":42}'))).start("json", { ...turn, options: { outputSchema: { type: "object" } } });
    expect(doneOf(await all(run)).final_response).toEqual({ answer: 42 });
  });

  test("done.diff is the last turn.diff's diff; null without one, or when the last one is empty", async () => {
    const withDiffs = (...diffs: string[]) =>
      async function* (): AsyncGenerator<EngineEvent> {
        for (const diff of diffs) yield { type: "turn.diff", diff };
        yield* completedTurn("hi");
      };
    const diffOf = async (script: () => AsyncIterable<EngineEvent>) => doneOf(await all(registry(fakeEngine(script)).start("d", turn))).diff;
    expect(await diffOf(withDiffs("diff --git a/x b/x\n+1\n", "diff --git a/x b/x\n+2\n"))).toBe("diff --git a/x b/x\n+2\n");
    expect(await diffOf(withDiffs("diff --git a/x b/x\n+1\n", ""))).toBeNull();
    expect(await diffOf(withDiffs())).toBeNull();
  });

  for (const reason of ["cancelled", "timeout"] as const) {
    test(`stopped as ${reason} -> ${reason}`, async () => {
      const runs = registry(fakeEngine(hangingTurn));
      const run = runs.start("r2", turn);
      const watching = all(run);
      await waitFor("thread.started", () => run.threadId === "thread-hang");
      run.stop(reason);
      run.stop("cancelled");
      expect(doneOf(await watching)).toMatchObject({ status: reason, thread_id: "thread-hang", error: `turn ${reason}` });
      expect(runs.size).toBe(0);
    });
  }

  test("a turn that completed before the stop stays completed", async () => {
    const run = registry(fakeEngine(() => completedTurn("hi"))).start("r3", turn);
    await run.finished;
    run.stop("cancelled");
    expect(doneOf(await all(run)).status).toBe("completed");
  });

  test("logs one line when the turn ends", async () => {
    const lines: string[] = [];
    let clock = 1000;
    const runs = new RunRegistry(fakeEngine(() => completedTurn("hi", "t-1")), createLogger("info", (line) => void lines.push(line)), {
      maxConcurrent: 10,
      turnTimeoutMs: undefined,
      now: () => (clock += 250),
    });
    await runs.start("r5", turn).finished;
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ INFO {2}turn finished request_id=r5 thread_id=t-1 status=completed duration_ms=250\n$/);
  });
});

describe("watching a run", () => {
  test("a late watcher gets every event, and one with Last-Event-ID only the later ones", async () => {
    const run = registry(fakeEngine(() => completedTurn("hi"))).start("w", turn);
    await run.finished;
    const everything = await all(run);
    expect(everything.map((e) => e.event)).toEqual(["thread.started", "turn.started", "item.completed", "turn.completed", "done"]);
    expect(await collect(run.watch(3, forever()))).toEqual(everything.slice(3));
  });

  test("a watcher of a finished run that claims to have seen more than there is gets done, once", async () => {
    const run = registry(fakeEngine(() => completedTurn("hi"))).start("past", turn);
    await run.finished;
    const done = (await all(run)).at(-1) as RunEvent;
    expect(done.id).toBe(5);
    for (const afterId of [4, 5, 6, 1_000, Number.MAX_SAFE_INTEGER]) expect(await collect(run.watch(afterId, forever()))).toEqual([done]);
  });

  test("a watcher of a running run with an id past its end reads on from the end, and gets done", async () => {
    const { turn: held, release } = heldTurn("t");
    const run = registry(fakeEngine(held)).start("ahead", turn);
    await waitFor("thread.started", () => run.threadId !== null);
    const watching = collect(run.watch(1_000, forever()));
    release();
    expect((await watching).map((e) => [e.id, e.event])).toEqual([
      [2, "thread.started"],
      [3, "turn.started"],
      [4, "item.completed"],
      [5, "turn.completed"],
      [6, "done"],
    ]);
  });

  test("several watchers see the same live events", async () => {
    const { turn: held, release } = heldTurn("t");
    const run = registry(fakeEngine(held)).start("many", turn);
    const watchers = [all(run), all(run), all(run)];
    release();
    const seen = await Promise.all(watchers);
    expect(seen[1]).toEqual(seen[0] as RunEvent[]);
    expect(seen[2]).toEqual(seen[0] as RunEvent[]);
    expect(doneOf(seen[0] as RunEvent[]).status).toBe("completed");
  });

  test("grace 0: when the last watcher leaves, the run is cancelled at once", async () => {
    const run = registry(fakeEngine(hangingTurn)).start("g0", turn);
    const leave = new AbortController();
    const watching = collect(run.watch(0, leave.signal));
    await waitFor("thread.started", () => run.threadId !== null);
    leave.abort();
    await watching;
    await run.finished;
    expect(run.summary().status).toBe("cancelled");
  });

  test("grace N: a watcher that comes back in time keeps the run going", async () => {
    const engine = fakeEngine(hangingTurn);
    const run = registry(engine, { reattachGraceMs: 80 }).start("gN", turn);
    const leave = new AbortController();
    const first = collect(run.watch(0, leave.signal));
    await waitFor("thread.started", () => run.threadId !== null);
    leave.abort();
    await first;
    const again = collect(run.watch(1, forever()));
    await Bun.sleep(160);
    expect(run.running).toBe(true);
    run.stop("cancelled");
    expect(doneOf(await again)).toMatchObject({ status: "cancelled" });
  });

  test("grace N: nobody comes back, the run is cancelled after it", async () => {
    const run = registry(fakeEngine(hangingTurn), { reattachGraceMs: 50 }).start("gone", turn);
    const leave = new AbortController();
    const watching = collect(run.watch(0, leave.signal));
    await waitFor("thread.started", () => run.threadId !== null);
    const left = performance.now();
    leave.abort();
    await watching;
    await run.finished;
    expect(performance.now() - left).toBeGreaterThanOrEqual(45);
    expect(run.summary().status).toBe("cancelled");
  });
});

describe("EventLog", () => {
  test("with nobody reading, past its caps it drops the oldest events, keeping the last", async () => {
    const log = new EventLog({ maxEvents: 3, maxBytes: 1_000 });
    for (let id = 1; id <= 4; id++) await log.append({ id, event: "e", data: "x" });
    await log.end({ id: 5, event: "done", data: "x" });
    expect((await collect(log.read(0, forever()))).map((e) => e.id)).toEqual([3, 4, 5]);
    const small = new EventLog({ maxEvents: 100, maxBytes: 10 });
    await small.append({ id: 1, event: "e", data: "12345678" });
    await small.end({ id: 2, event: "done", data: "123456789012" });
    expect((await collect(small.read(0, forever()))).map((e) => e.id)).toEqual([2]);
  });

  test("a reader past the end that comes while the last event waits for a lagging reader still gets it", async () => {
    const log = new EventLog({ maxEvents: 1, maxBytes: 1_000 });
    await log.append({ id: 1, event: "e", data: "x" });
    const lagging = log.read(0, forever());
    expect((await lagging.next()).value?.map((e: RunEvent) => e.id)).toEqual([1]);
    const ending = log.end({ id: 2, event: "done", data: "x" });
    const ahead = collect(log.read(99, forever()));
    expect((await lagging.next()).value?.map((e: RunEvent) => e.id)).toEqual([2]);
    expect((await lagging.next()).done).toBe(true);
    await ending;
    expect((await ahead).map((e) => e.id)).toEqual([2]);
  });

  test("a live reader that lags never loses an event: the writer waits for it", async () => {
    const log = new EventLog({ maxEvents: 3, maxBytes: 1_000 });
    const reader = log.read(0, forever());
    const firstRead = reader.next();
    await log.append({ id: 1, event: "e", data: "x" });
    expect((await firstRead).value).toEqual([{ id: 1, event: "e", data: "x" }]);
    let written = 1;
    const writer = (async () => {
      for (let id = 2; id <= 9; id++) {
        await log.append({ id, event: "e", data: "x" });
        written = id;
      }
      await log.end({ id: 10, event: "done", data: "x" });
    })();
    await Bun.sleep(20);
    expect(written).toBe(3);
    const rest = await collect(reader);
    await writer;
    expect(rest.map((e) => e.id)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});

describe("RunRegistry", () => {
  test("an id can run once at a time, and again after it ended", async () => {
    const runs = registry(fakeEngine(() => completedTurn("hi")));
    const first = runs.start("same", turn);
    expect(() => runs.start("same", turn)).toThrow(new RunIdInUseError("same"));
    await first.finished;
    await runs.start("same", turn).finished;
  });

  test("a thread runs one turn at a time", async () => {
    const runs = registry(fakeEngine(hangingTurn));
    const first = runs.start("a", { ...turn, threadId: "thread-hang" });
    expect(() => runs.start("b", { ...turn, threadId: "thread-hang" })).toThrow(new ThreadBusyError("thread-hang", "a"));
    first.stop("cancelled");
    await first.finished;
    runs.start("b", { ...turn, threadId: "thread-hang" }).stop("cancelled");
  });

  test("a turn replacing a run may take that run's id, thread and slot, and no other's", async () => {
    const runs = registry(fakeEngine(hangingTurn), { maxConcurrent: 2 });
    const a = runs.start("a", { ...turn, threadId: "thread-a" });
    const b = runs.start("b", { ...turn, threadId: "thread-b" });
    expect(() => runs.checkStart("a", { ...turn, threadId: "thread-a" }, { replacing: a })).not.toThrow();
    expect(() => runs.checkStart("c", { ...turn, threadId: "thread-a" })).toThrow(new ThreadBusyError("thread-a", "a"));
    expect(() => runs.checkStart("b", turn, { replacing: a })).toThrow(new RunIdInUseError("b"));
    expect(() => runs.checkStart("c", { ...turn, threadId: "thread-b" }, { replacing: a })).toThrow(new ThreadBusyError("thread-b", "b"));
    expect(() => runs.checkStart("c", turn)).toThrow(new RunLimitError(2));
    runs.stopAll("cancelled");
    await Promise.all([a.finished, b.finished]);
  });

  test("finished runs are listed until the retention ends", async () => {
    const runs = registry(fakeEngine(() => completedTurn("hi")), { retentionMs: 40 });
    await runs.start("kept", turn).finished;
    expect(runs.list().map((run) => run.summary())).toEqual([
      {
        id: "kept",
        thread_id: "thread-1",
        status: "completed",
        queue_position: null,
        started_at: expect.any(String),
        finished_at: expect.any(String),
        usage: USAGE,
        replaces: null,
      },
    ]);
    expect([runs.retainedRuns, runs.retainedBytes]).toEqual([1, (runs.get("kept") as Run).size]);
    await waitFor("the retention to end", () => runs.get("kept") === undefined, 2_000);
    expect([runs.retainedRuns, runs.retainedBytes]).toEqual([0, 0]);
  });

  test("at most maxRetained finished runs are kept, the oldest dropped first", async () => {
    const runs = registry(fakeEngine(() => completedTurn("hi")), { maxRetained: 2 });
    for (const id of ["r1", "r2", "r3"]) await runs.start(id, turn).finished;
    expect(runs.list().map((run) => run.id)).toEqual(["r2", "r3"]);
  });

  describe("at most maxRetainedBytes of finished runs' events are kept", () => {
    /** Turns whose events are as large as their input says; `hang` runs until stopped. */
    const engine = fakeEngine((request) => (request.input === "hang" ? hangingTurn(request) : completedTurn("x".repeat(Number(request.input)))));
    const sized = (input: number) => ({ ...turn, input: String(input) });

    test("the oldest finished go first; running runs are neither dropped nor counted", async () => {
      const probe = registry(engine).start("probe", sized(1_000));
      await probe.finished;
      const size = probe.size;
      expect(size).toBeGreaterThan(2_000);
      const runs = registry(engine, { maxRetainedBytes: Math.floor(2.5 * size) });
      const long = runs.start("long", { ...turn, input: "hang" });
      for (const id of ["r1", "r2", "r3"]) await runs.start(id, sized(1_000)).finished;
      const bytesOf = (...ids: string[]) => ids.reduce((sum, id) => sum + (runs.get(id) as Run).size, 0);
      expect(runs.list().map((run) => run.id)).toEqual(["long", "r2", "r3"]);
      expect(runs.get("r1")).toBeUndefined();
      expect([runs.retainedRuns, runs.retainedBytes]).toEqual([2, bytesOf("r2", "r3")]);
      // Once finished, the long run counts too, and it is newer than r2 and r3.
      long.stop("cancelled");
      await long.finished;
      expect([runs.retainedRuns, runs.retainedBytes]).toEqual([3, bytesOf("r2", "r3", "long")]);
      await runs.start("r4", sized(1_000)).finished;
      expect(runs.list().map((run) => run.id)).toEqual(["long", "r3", "r4"]);
      expect([runs.retainedRuns, runs.retainedBytes]).toEqual([3, bytesOf("r3", "long", "r4")]);
    });

    test("a run larger than the whole budget is not kept, and drops nothing else", async () => {
      const runs = registry(engine, { maxRetainedBytes: 10_000 });
      const small = runs.start("small", sized(100));
      await small.finished;
      const huge = runs.start("huge", sized(20_000));
      await huge.finished;
      expect(huge.size).toBeGreaterThan(10_000);
      expect(runs.list().map((run) => run.id)).toEqual(["small"]);
      expect([runs.retainedRuns, runs.retainedBytes]).toEqual([1, small.size]);
    });

    test("an id run again replaces its finished run, which no longer counts", async () => {
      const runs = registry(engine);
      await runs.start("again", sized(5_000)).finished;
      const second = runs.start("again", sized(100));
      expect([runs.retainedRuns, runs.retainedBytes]).toEqual([0, 0]);
      await second.finished;
      expect([runs.retainedRuns, runs.retainedBytes]).toEqual([1, second.size]);
    });
  });

  test("stopAll cancels every run, and whenIdle resolves when they are gone", async () => {
    const runs = registry(fakeEngine(hangingTurn));
    const started = ["a", "b", "c"].map((id) => runs.start(id, turn));
    expect(runs.size).toBe(3);
    expect(await runs.whenIdle(20)).toBe(false);
    const idle = runs.whenIdle(5_000);
    runs.stopAll("cancelled");
    expect(await idle).toBe(true);
    for (const run of started) expect(run.summary().status).toBe("cancelled");
  });

  test("waiting turns: never counted as finished runs; stopAll cancels them too, and whenIdle waits for them", async () => {
    const engine = fakeEngine((request) => (request.input === "hang" ? hangingTurn(request) : completedTurn("hi")));
    const runs = registry(engine, { maxRetained: 1 });
    const hanging = { ...turn, input: "hang", threadId: "thread-hang" };
    const a = runs.start("a", hanging);
    const b = runs.start("b", { ...hanging, input: "waits" }, { enqueue: true });
    expect(b.summary()).toMatchObject({ status: "queued", queue_position: 1, thread_id: "thread-hang" });
    await runs.start("other", turn).finished;
    expect(runs.list().map((run) => run.id)).toEqual(["a", "b", "other"]);
    expect([runs.size, runs.queued]).toEqual([1, 1]);
    expect(await runs.whenIdle(20)).toBe(false);
    const idle = runs.whenIdle(5_000);
    runs.stopAll("cancelled");
    expect(await idle).toBe(true);
    expect([a, b].map((run) => run.summary().status)).toEqual(["cancelled", "cancelled"]);
    expect(engine.calls.map((call) => call.input)).toEqual(["hang", "hi"]);
  });

  test("while a turn is replaced, the thread waits for its replacement, and the registry is not idle", async () => {
    const engine = fakeEngine((request) => (request.input === "hang" ? hangingTurn(request) : completedTurn("hi", request.threadId)));
    const runs = registry(engine);
    const hanging = { ...turn, input: "hang", threadId: "thread-hang" };
    const a = runs.start("a", hanging);
    const b = runs.start("b", { ...hanging, input: "waits" }, { enqueue: true });
    let idle: boolean | undefined;
    const becameIdle = runs.whenIdle(5_000);
    void becameIdle.then((said) => (idle = said));
    // Between the end of `a` and the start of `e` no turn runs, yet `b` still waits: not idle.
    const e = await runs.replace(a, "e", () => hanging);
    expect(idle).toBeUndefined();
    expect([e.summary().status, b.summary().status]).toEqual(["running", "queued"]);
    e.stop("cancelled");
    expect(await becameIdle).toBe(true);
    expect(b.summary().status).toBe("completed");
    expect(engine.calls.map((call) => call.input)).toEqual(["hang", "hang", "waits"]);
  });

  test("admitWaiting: a waiting turn starts only once it says yes; no, and it waits on in its place and is asked again", async () => {
    const engine = fakeEngine((request) => (request.input === "hang" ? hangingTurn(request) : completedTurn("hi", request.threadId)));
    const answers: Array<boolean | Promise<boolean>> = [false, Promise.resolve(false), true];
    const asked: string[] = [];
    const runs = registry(engine, {
      admitWaiting: (run) => {
        asked.push(run.id);
        return answers.shift() ?? true;
      },
    });
    const hanging = { ...turn, input: "hang", threadId: "thread-hang" };
    const a = runs.start("a", hanging);
    const b = runs.start("b", { ...hanging, input: "waits" }, { enqueue: true });
    // Had its slots before it queued: never asked.
    const c = runs.start("c", { ...hanging, input: "waits too" }, { enqueue: true, admitted: true });
    a.stop("cancelled");
    await a.finished;
    // No, then no again (asked again ADMIT_RETRY_MS later, nothing having ended), then yes.
    expect(b.summary()).toMatchObject({ status: "queued", queue_position: 1 });
    await b.finished;
    expect(asked).toEqual(["b", "b", "b"]);
    await c.finished;
    expect([b.summary().status, c.summary().status]).toEqual(["completed", "completed"]);
    expect(engine.calls.map((call) => call.input)).toEqual(["hang", "waits", "waits too"]);
  });

  test("close refuses new runs and lets the running ones finish", async () => {
    const runs = registry(fakeEngine(hangingTurn));
    const run = runs.start("a", turn);
    runs.close();
    expect(() => runs.start("b", turn)).toThrow(new RunsClosedError());
    expect(runs.size).toBe(1);
    run.stop("cancelled");
    await run.finished;
  });

  test("at most maxConcurrent runs at once; a finished one makes room", async () => {
    const runs = registry(fakeEngine(hangingTurn), { maxConcurrent: 2 });
    const first = runs.start("a", turn);
    runs.start("b", turn);
    expect(() => runs.start("c", turn)).toThrow(new RunLimitError(2));
    first.stop("cancelled");
    await first.finished;
    expect(runs.start("c", turn).id).toBe("c");
    runs.stopAll("cancelled");
  });

  test("cancel stops a running run by id, and says whether there was one", async () => {
    const runs = registry(fakeEngine(hangingTurn));
    const run = runs.start("a", turn);
    expect(runs.cancel("nope")).toBe(false);
    expect(runs.cancel("a")).toBe(true);
    await run.finished;
    expect(runs.cancel("a")).toBe(false);
  });

  test("a turn past the turn timeout ends with status timeout", async () => {
    const run = registry(fakeEngine(hangingTurn), { turnTimeoutMs: 30 }).start("slow", turn);
    expect(doneOf(await all(run))).toMatchObject({ status: "timeout", error: "turn timeout" });
  });
});

describe("the stall watchdog (stallTimeoutMs)", () => {
  /** Yields `count` events, each after `gapMs`, then completes; once stopped, it ends as the SDK does, by throwing. */
  const steadyTurn = (count: number, gapMs: number) =>
    async function* (request: TurnRequest): AsyncGenerator<ThreadEvent> {
      yield { type: "thread.started", thread_id: "t" };
      for (let i = 0; i < count; i++) {
        await Bun.sleep(gapMs);
        if (request.signal.aborted) throw new Error("The operation was aborted.");
        yield { type: "item.completed", item: { id: `item_${i}`, type: "reasoning", text: "..." } };
      }
      yield* completedTurn("steady", "t");
    };

  test("a turn whose engine goes silent ends with status timeout, saying it stalled, and the engine is stopped", async () => {
    const engine = fakeEngine(hangingTurn);
    const run = registry(engine, { stallTimeoutMs: 50 }).start("stalled", turn);
    expect(doneOf(await all(run))).toMatchObject({
      status: "timeout",
      thread_id: "thread-hang",
      error: "turn stalled: codex sent no event for 0.05 s (--stall-timeout)",
    });
    expect(engine.calls[0]?.signal.aborted).toBe(true);
  });

  test("each event restarts it: a turn that keeps talking runs longer than the stall timeout", async () => {
    const run = registry(fakeEngine(steadyTurn(8, 20)), { stallTimeoutMs: 100 }).start("steady", turn);
    expect(doneOf(await all(run))).toMatchObject({ status: "completed", final_response: "steady" });
  });

  test("an approval waiting for a client is not a stall; once it is resolved the watchdog runs again", async () => {
    let resolve!: () => void;
    const answered = new Promise<void>((done) => (resolve = done));
    const engine = fakeEngine(async function* (request) {
      yield { type: "thread.started", thread_id: "t" } satisfies ThreadEvent;
      yield { type: "approval.requested", approval_id: "a1", kind: "command_execution", command: "ls" } satisfies EngineEvent;
      await answered;
      yield { type: "approval.resolved", approval_id: "a1", decision: "approve", by: "client" } satisfies EngineEvent;
      await new Promise((stopped) => request.signal.addEventListener("abort", stopped, { once: true }));
      throw new Error("The operation was aborted.");
    });
    const run = registry(engine, { stallTimeoutMs: 50 }).start("asking", turn);
    const watching = all(run);
    await waitFor("the approval", () => run.summary().status === "running" && engine.calls.length === 1);
    // Not synchronising: three stall timeouts pass with the approval pending, and nothing happens.
    await Bun.sleep(150);
    expect(run.running).toBe(true);
    resolve();
    expect(doneOf(await watching)).toMatchObject({ status: "timeout", error: "turn stalled: codex sent no event for 0.05 s (--stall-timeout)" });
  });

  test("a reader that holds the turn up (backpressure) is not a stall of codex", async () => {
    const run = registry(fakeEngine(steadyTurn(4, 0)), { stallTimeoutMs: 50, maxEvents: 2 }).start("held-up", turn);
    const reader = run.watch(0, forever());
    expect((await reader.next()).value?.[0]?.event).toBe("thread.started");
    // Not synchronising: the log is full and the turn waits for this reader, three stall timeouts long.
    await Bun.sleep(150);
    const rest = await collect(reader);
    expect(doneOf(rest)).toMatchObject({ status: "completed", final_response: "steady" });
  });

  test("a waiting turn is not watched until it runs", async () => {
    let calls = 0;
    const runs = registry(fakeEngine((request) => (++calls === 1 ? steadyTurn(20, 15)(request) : completedTurn("second", "t"))), { stallTimeoutMs: 150 });
    const first = runs.start("q1", { ...turn, threadId: "t" });
    const second = runs.start("q2", { ...turn, threadId: "t" }, { enqueue: true });
    // The second turn waits for the first, twice the stall timeout, then runs and completes.
    expect(doneOf(await all(first)).status).toBe("completed");
    expect(doneOf(await all(second))).toMatchObject({ status: "completed", final_response: "second" });
  });

  test("the first stop's reason and error win", async () => {
    const run = registry(fakeEngine(hangingTurn), { stallTimeoutMs: 10_000 }).start("both", turn);
    const watching = all(run);
    await waitFor("thread.started", () => run.threadId === "thread-hang");
    run.stop("cancelled");
    run.stop("timeout", "something else");
    expect(doneOf(await watching)).toMatchObject({ status: "cancelled", error: "turn cancelled" });
  });
});
