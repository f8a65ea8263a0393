import { describe, expect, test } from "bun:test";
import type { Engine, ThreadEvent } from "../src/engine/types";
import { createLogger } from "../src/log";
import { type RegistryOptions, RunIdInUseError, RunLimitError, RunRegistry, RunsClosedError } from "../src/runs/registry";
import type { DoneData, RunEvent } from "../src/runs/run";
import { completedTurn, fakeEngine, hangingTurn, USAGE } from "./fixtures/fake-engine";

const quiet = createLogger("off");
const turn = { input: "hi", workDir: "/tmp" };
const registry = (engine: Engine, options: Partial<RegistryOptions> = {}) =>
  new RunRegistry(engine, quiet, { maxConcurrent: 10, turnTimeoutMs: undefined, ...options });

async function collect(events: AsyncIterable<RunEvent>): Promise<RunEvent[]> {
  const all: RunEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

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
    ["turn.completed -> completed, with usage", () => completedTurn("hi", "t"), { status: "completed", usage: USAGE, error: null }],
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

  test.each(cases)("%s", async (_, script, expected) => {
    const { events } = registry(fakeEngine(script)).start("r1", turn);
    const all = await collect(events);
    expect(all.map((event) => event.id)).toEqual(all.map((_, index) => index + 1));
    expect(doneOf(all)).toEqual({ status: "error", thread_id: "t", request_id: "r1", usage: null, error: null, ...expected });
  });

  test.each(["cancelled", "timeout"] as const)("stopped as %s -> %s", async (reason) => {
    const runs = registry(fakeEngine(hangingTurn));
    const { run, events } = runs.start("r2", turn);
    const iterator = events[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.event).toBe("thread.started");
    run.stop(reason);
    run.stop("cancelled");
    const rest: RunEvent[] = [];
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) rest.push(next.value);
    expect(doneOf(rest)).toMatchObject({ status: reason, thread_id: "thread-hang", error: `turn ${reason}` });
    expect(runs.size).toBe(0);
  });

  test("a turn that completed before the stop stays completed", async () => {
    const { run, events } = registry(fakeEngine(() => completedTurn("hi"))).start("r3", turn);
    const all: RunEvent[] = [];
    for await (const event of events) {
      all.push(event);
      if (event.event === "turn.completed") run.stop("cancelled");
    }
    expect(doneOf(all).status).toBe("completed");
  });

  test("a run stopped before it began never starts the engine", async () => {
    const engine = fakeEngine(() => completedTurn("hi"));
    const { run, events } = registry(engine).start("r4", turn);
    run.stop("cancelled");
    const all = await collect(events);
    expect(all).toHaveLength(1);
    expect(doneOf(all)).toMatchObject({ status: "cancelled", thread_id: null });
    expect(engine.calls).toHaveLength(0);
  });

  test("logs one line when the turn ends", async () => {
    const lines: string[] = [];
    let clock = 1000;
    const runs = new RunRegistry(fakeEngine(() => completedTurn("hi", "t-1")), createLogger("info", (line) => void lines.push(line)), {
      maxConcurrent: 10,
      turnTimeoutMs: undefined,
      now: () => (clock += 250),
    });
    await collect(runs.start("r5", turn).events);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ INFO {2}turn finished request_id=r5 thread_id=t-1 status=completed duration_ms=250\n$/);
  });
});

describe("RunRegistry", () => {
  test("an id can run once at a time, and again after it ended", async () => {
    const runs = registry(fakeEngine(() => completedTurn("hi")));
    const first = runs.start("same", turn);
    expect(() => runs.start("same", turn)).toThrow(new RunIdInUseError("same"));
    await collect(first.events);
    await collect(runs.start("same", turn).events);
  });

  test("stopAll cancels every run, and whenIdle resolves when they are gone", async () => {
    const runs = registry(fakeEngine(hangingTurn));
    const streams = ["a", "b", "c"].map((id) => collect(runs.start(id, turn).events));
    expect(runs.size).toBe(3);
    expect(await runs.whenIdle(20)).toBe(false);
    const idle = runs.whenIdle(5_000);
    runs.stopAll("cancelled");
    expect(await idle).toBe(true);
    for (const events of await Promise.all(streams)) expect(doneOf(events).status).toBe("cancelled");
    expect(await runs.whenIdle(0)).toBe(true);
  });

  test("close refuses new runs and lets the running ones finish", async () => {
    const runs = registry(fakeEngine(hangingTurn));
    const { run, events } = runs.start("a", turn);
    const stream = collect(events);
    runs.close();
    expect(() => runs.start("b", turn)).toThrow(new RunsClosedError());
    expect(runs.size).toBe(1);
    run.stop("cancelled");
    expect(doneOf(await stream).status).toBe("cancelled");
  });

  test("at most maxConcurrent runs at once; a finished one makes room", async () => {
    const runs = registry(fakeEngine(hangingTurn), { maxConcurrent: 2 });
    const first = runs.start("a", turn);
    const stream = collect(first.events);
    runs.start("b", turn);
    expect(() => runs.start("c", turn)).toThrow(new RunLimitError(2));
    first.run.stop("cancelled");
    await stream;
    expect(runs.start("c", turn).run.id).toBe("c");
  });

  test("cancel stops a run by id, and says whether there was one", async () => {
    const runs = registry(fakeEngine(hangingTurn));
    const stream = collect(runs.start("a", turn).events);
    expect(runs.cancel("nope")).toBe(false);
    expect(runs.cancel("a")).toBe(true);
    expect(doneOf(await stream).status).toBe("cancelled");
  });

  test("a turn past the turn timeout ends with status timeout", async () => {
    const runs = registry(fakeEngine(hangingTurn), { turnTimeoutMs: 30 });
    const events = await collect(runs.start("slow", turn).events);
    expect(doneOf(events)).toMatchObject({ status: "timeout", error: "turn timeout" });
  });
});
