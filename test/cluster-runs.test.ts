/**
 * The runs layer across replicas, in this process: each replica is `createApp` with a fake engine,
 * its own registry and its own connection to one real redis-server, as server.ts wires them.
 * What the engine does is scripted here, so the exact frames, writes and refusals can be checked.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EngineEvent, ThreadEvent, TurnRequest } from "../src/engine/types";
import type { ClusterStore } from "../src/store/cluster-store";
import { type ReplicaOptions, startInProcessReplica } from "./fixtures/cluster-replica";
import { completedTurn, type FakeEngine, fakeEngine, hangingTurn, USAGE } from "./fixtures/fake-engine";
import { redisServerInstalled, startRedis, type TestRedis } from "./fixtures/redis-server";
import { as, type TenantName, writeTokensFile } from "./fixtures/tenants";
import { readSse, sseReader } from "./fixtures/sse";
import { startTcpProxy } from "./fixtures/tcp-proxy";
import { waitFor } from "./fixtures/wait-for";


const hasRedis = redisServerInstalled("cluster-runs.test.ts");
let redis: TestRedis;
let admin: RedisClient;
const opened: { close(): void }[] = [];

beforeAll(async () => {
  if (!hasRedis) return;
  redis = await startRedis();
  admin = new RedisClient(redis.url);
});

afterEach(() => {
  if (!hasRedis) return;
  for (const replica of opened.splice(0)) replica.close();
});

afterAll(async () => {
  if (!hasRedis) return;
  admin.close();
  await redis.kill();
});

/** One replica, closed after the test. */
async function replica(id: string, engine: FakeEngine, { url, approvals, ...options }: ReplicaOptions & { url?: string; approvals?: boolean } = {}) {
  const started = await startInProcessReplica(url ?? redis.url, id, engine, {
    retentionMs: 60_000,
    ...options,
    ...(approvals && { config: { bypassApprovalsAndSandbox: false, approvalPolicy: "on-request" } }),
  });
  opened.push(started);
  return started;
}

/** A wrapStore that passes each takeSlot through `around`, to watch it or hold it up. */
const aroundTakeSlot =
  (around: (take: () => Promise<boolean>, runId: string) => Promise<boolean>) =>
  (store: ClusterStore): ClusterStore =>
    new Proxy(store, {
      get: (target, name, receiver) =>
        name === "takeSlot"
          ? (...args: Parameters<ClusterStore["takeSlot"]>) => around(() => target.takeSlot(...args), args[0])
          : Reflect.get(target, name, receiver),
    });

const errorOf = async (response: Response) => ((await response.json()) as { error: { code: string; message: string } }).error;

describe.skipIf(!hasRedis)("events in Redis", () => {
  test("deltas go out together, one write per 50 ms at most; the other replica gets the same bytes", async () => {
    let writes = 0;
    async function* deltas(): AsyncGenerator<ThreadEvent> {
      yield { type: "thread.started", thread_id: "t-deltas" };
      for (let i = 0; i < 60; i++) {
        yield { type: "item.updated", item: { id: "m", type: "agent_message", text: `word ${i}` } };
        await Bun.sleep(5);
      }
      yield { type: "turn.completed", usage: USAGE };
    }
    const owner = await replica("deltas-owner", fakeEngine(deltas), {
      wrapStore: (store) =>
        new Proxy(store, {
          get: (target, name, receiver) =>
            name === "appendEvents" ? (...args: Parameters<ClusterStore["appendEvents"]>) => (writes++, target.appendEvents(...args)) : Reflect.get(target, name, receiver),
        }),
    });
    const other = await replica("deltas-other", fakeEngine(() => completedTurn("unused")));
    const started = performance.now();
    const local = await readSse(await owner.post({ type: "user_message", id: "deltas", message: "go" }));
    const seconds = (performance.now() - started) / 1000;
    const remote = await readSse(await other.app.request("/runs/deltas/events"));
    expect(remote.raw).toBe(local.raw);
    expect(local.frames).toHaveLength(63);
    // 60 deltas over `seconds`: at most one write per 50 ms, plus the immediate ones (thread.started, turn.completed, done).
    expect(writes).toBeLessThanOrEqual(Math.ceil(seconds / 0.05) + 4);
    expect(writes).toBeLessThan(30);
  });

  test("a run's stream is trimmed (MAXLEN ~) and expires with the retention; a replay from the other replica starts at the oldest kept", async () => {
    async function* flood(): AsyncGenerator<ThreadEvent> {
      yield { type: "thread.started", thread_id: "t-flood" };
      for (let i = 0; i < 1_000; i++) yield { type: "item.completed", item: { id: `c${i}`, type: "agent_message", text: `${i}` } };
      yield { type: "turn.completed", usage: USAGE };
    }
    const owner = await replica("trim-owner", fakeEngine(flood), { maxEvents: 100, retentionMs: 30_000 });
    const other = await replica("trim-other", fakeEngine(() => completedTurn("unused")));
    await readSse(await owner.post({ type: "user_message", id: "flooded", message: "go" }));
    await waitFor("done in Redis", async () => (await admin.send("PTTL", ["codex:run:flooded:events"])) > 0);
    const length = (await admin.send("XLEN", ["codex:run:flooded:events"])) as number;
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThan(300);
    for (const key of ["codex:run:flooded:events", "codex:run:flooded"]) {
      const ttl = (await admin.send("PTTL", [key])) as number;
      expect(ttl).toBeGreaterThan(25_000);
      expect(ttl).toBeLessThanOrEqual(30_000);
    }
    const replay = await readSse(await other.app.request("/runs/flooded/events"));
    expect(replay.frames).toHaveLength(length);
    expect(Number(replay.frames[0]?.id)).toBe(1_004 - length);
    expect(replay.frames.at(-1)).toMatchObject({ event: "done", id: "1003" });
  });
});

describe.skipIf(!hasRedis)("following another replica's run", () => {
  test("a Last-Event-ID past what Redis holds of a running run still ends with done, without events the client has", async () => {
    // The owner's writes wait until the client of the other replica has asked: Redis lags behind the owner.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const x = await replica("past-x", fakeEngine((request) => hangingTurn(request)), {
      wrapStore: (store) =>
        new Proxy(store, {
          get: (target, name, receiver) =>
            name === "appendEvents"
              ? async (...args: Parameters<ClusterStore["appendEvents"]>) => (await held, target.appendEvents(...args))
              : Reflect.get(target, name, receiver),
        }),
    });
    const y = await replica("past-y", fakeEngine(() => completedTurn("unused")));
    const holding = sseReader(await x.post({ type: "user_message", id: "past-end", message: "hang" }));
    await holding.until((frame) => frame.event === "thread.started");
    const ahead = sseReader(await y.app.request("/runs/past-end/events", { headers: { "last-event-id": "1" } }));
    const claiming = sseReader(await y.app.request("/runs/past-end/events", { headers: { "last-event-id": "999" } }));
    release();
    expect((await y.app.request("/runs/past-end", { method: "DELETE" })).status).toBe(200);
    // The client that has event 1 gets what follows it; the one that claims 999 gets done.
    expect((await ahead.rest(5_000)).frames.map((frame) => [frame.id, frame.event])).toEqual([["2", "done"]]);
    expect((await claiming.rest(5_000)).frames.map((frame) => [frame.id, frame.event])).toEqual([["2", "done"]]);
    await holding.rest();
  });

  test("a follower taking events one at a time keeps its stream in the one blocking read: no wake an event", async () => {
    // Each event is let out only once the other replica's client has the one before, so that each
    // arrives in a read of its own, after the follower has passed the last one on.
    let permits = 0;
    let waiting: (() => void) | undefined;
    const permitted = () => new Promise<void>((resolve) => (permits > 0 ? (permits--, resolve()) : (waiting = resolve)));
    const permit = () => (waiting ? (waiting(), (waiting = undefined)) : permits++);
    async function* stepwise(): AsyncGenerator<ThreadEvent> {
      yield { type: "thread.started", thread_id: "t-steps" };
      for (let i = 0; i < 10; i++) {
        await permitted();
        yield { type: "item.completed", item: { id: `s${i}`, type: "agent_message", text: `step ${i}` } };
      }
      yield { type: "turn.completed", usage: USAGE };
    }
    const owner = await replica("steps-owner", fakeEngine(stepwise));
    const other = await replica("steps-other", fakeEngine(() => completedTurn("unused")));
    const local = sseReader(await owner.post({ type: "user_message", id: "steps", message: "go" }));
    await local.until((frame) => frame.event === "thread.started");
    await waitFor("the run in Redis", async () => (await other.app.request("/runs/steps")).status === 200);
    const remote = sseReader(await other.app.request("/runs/steps/events"));
    await remote.until((frame) => frame.event === "thread.started");
    const wakesBefore = (await admin.send("XLEN", ["codex:replica:steps-other:wake"])) as number;
    for (let i = 0; i < 10; i++) {
      permit();
      await remote.until((frame) => frame.data.includes(`step ${i}`));
    }
    const events = (await remote.rest(5_000)).frames.map((frame) => frame.event);
    expect(events).toEqual(["thread.started", ...Array<string>(10).fill("item.completed"), "turn.completed", "done"]);
    await local.rest();
    // Before, the read left the stream out once it had handed its entries over, and had to be
    // woken when the follower came back for more: one wake an event.
    expect(((await admin.send("XLEN", ["codex:replica:steps-other:wake"])) as number) - wakesBefore).toBe(0);
  });
});

describe.skipIf(!hasRedis)("commands for another replica's run", () => {
  test("user_confirm on the other replica answers the owner's pending approval", async () => {
    const answered: string[] = [];
    let release!: () => void;
    const engine = fakeEngine(async function* (): AsyncGenerator<EngineEvent> {
      yield { type: "thread.started", thread_id: "t-approve" };
      yield { type: "approval.requested", approval_id: "ap-1", kind: "command_execution", command: "rm -rf build" };
      await new Promise<void>((resolve) => (release = resolve));
      yield* completedTurn("approved", "t-approve");
    });
    engine.resolveApproval = (approvalId, decision) => {
      answered.push(`${approvalId} ${decision}`);
      release();
      return true;
    };
    const owner = await replica("approve-owner", engine, { approvals: true });
    const other = await replica("approve-other", fakeEngine(() => completedTurn("unused")), { approvals: true });
    const stream = sseReader(await owner.post({ type: "user_message", id: "asks", message: "go" }));
    await stream.until((frame) => frame.event === "approval.requested");
    const unknown = await other.post({ type: "user_confirm", id: "asks", approval_id: "ap-9", decision: "approve" });
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toEqual({ code: "approval_not_found", message: "Turn asks has no pending approval ap-9." });
    const confirmed = await other.post({ type: "user_confirm", id: "asks", approval_id: "ap-1", decision: "approve" });
    expect(confirmed.status).toBe(200);
    expect(await confirmed.json()).toEqual({ approval_id: "ap-1", decision: "approve" });
    expect(answered).toEqual(["ap-1 approve"]);
    expect((await stream.rest()).frames.at(-1)?.event).toBe("done");
    const late = await other.post({ type: "user_confirm", id: "asks", approval_id: "ap-1", decision: "approve" });
    expect(await errorOf(late)).toEqual({ code: "run_not_found", message: "No turn with id asks is running." });
  });

  test("a cancel reaches the run going on elsewhere, though a finished run here had its id", async () => {
    const x = await replica("reuse-x", fakeEngine(() => completedTurn("done here")));
    const y = await replica("reuse-y", fakeEngine((request) => hangingTurn(request)));
    await readSse(await x.post({ type: "user_message", id: "reused", message: "hi" }));
    // The owner's client may see done a moment before Redis does; until then the id is in use everywhere.
    await waitFor("the finished run in Redis", async () => JSON.parse((await admin.send("HGET", ["codex:run:reused", "summary"])) ?? "{}").status === "completed");
    const going = sseReader(await y.post({ type: "user_message", id: "reused", message: "hang" }));
    await going.until((frame) => frame.event === "thread.started");
    const cancelled = await x.post({ type: "user_cancel", id: "reused" });
    expect(cancelled.status).toBe(200);
    const onOwner = await going.rest();
    expect(JSON.parse(onOwner.frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "cancelled", request_id: "reused", error: "turn cancelled", thread_id: "thread-hang" });
    // The id's stream is the new run's alone, from any replica.
    await waitFor("the new run's end in Redis", async () => JSON.parse((await admin.send("HGET", ["codex:run:reused", "summary"])) ?? "{}").status === "cancelled");
    expect((await readSse(await x.app.request("/runs/reused/events"))).raw).toBe(onOwner.raw);
  });

  test("user_edit on the other replica: the owner replaces the turn, streamed through the receiver", async () => {
    const engine = fakeEngine((request: TurnRequest) => (request.input === "first" ? hangingTurn(request) : completedTurn(`edited: ${request.input}`, "t-edit")));
    const owner = await replica("edit-owner", engine);
    const other = await replica("edit-other", fakeEngine(() => completedTurn("unused")));
    const first = sseReader(await owner.post({ type: "user_message", id: "to-edit", message: "first" }));
    await first.until((frame) => frame.event === "thread.started");
    const edited = await other.app.request("/messages", {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "the-edit" },
      body: JSON.stringify({ type: "user_edit", id: "to-edit", message: "second" }),
    });
    expect(edited.status).toBe(200);
    const frames = (await readSse(edited)).frames;
    expect(JSON.parse(frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", request_id: "the-edit", replaces: "to-edit", final_response: "edited: second" });
    expect(JSON.parse((await first.rest()).frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "cancelled" });
    expect(engine.calls.map((call) => call.threadId ?? null)).toEqual([null, "thread-hang"]);
  });

  test("a client leaving a turn forwarded to the owner cancels it there (reattach grace 0)", async () => {
    const threadId = crypto.randomUUID();
    const engine = fakeEngine((request) => (request.input === "say hi" ? completedTurn("hi", threadId) : hangingTurn(request)));
    const owner = await replica("leave-owner", engine);
    const other = await replica("leave-other", fakeEngine(() => completedTurn("unused")));
    await readSse(await owner.post({ type: "user_message", id: "leave-0", message: "say hi" }));
    const through = sseReader(await other.post({ type: "user_message", id: "leave-1", thread_id: threadId, message: "hang" }));
    await through.until((frame) => frame.event === "thread.started");
    expect(owner.runs.get("leave-1")?.running).toBe(true);
    await through.cancel();
    await waitFor("the owner to cancel the turn", () => owner.runs.get("leave-1")?.running === false);
    expect(owner.runs.get("leave-1")?.summary().status).toBe("cancelled");
  });
});

describe.skipIf(!hasRedis)("threads, ids and limits", () => {
  test("a run id that runs on one replica is in use on the others too", async () => {
    const x = await replica("ids-x", fakeEngine((request) => hangingTurn(request)));
    const y = await replica("ids-y", fakeEngine(() => completedTurn("unused")));
    const holding = sseReader(await x.post({ type: "user_message", id: "same-id", message: "hang" }));
    await holding.until((frame) => frame.event === "thread.started");
    const refused = await y.post({ type: "user_message", id: "same-id", message: "hello" });
    expect(refused.status).toBe(409);
    expect(await errorOf(refused)).toEqual({ code: "id_in_use", message: "a turn with id same-id is already running" });
    await holding.cancel();
  });

  test("a thread whose owner is gone: 503 thread_unavailable with Retry-After; one no replica has: 404", async () => {
    const orphanId = crypto.randomUUID();
    const nowhereId = crypto.randomUUID();
    await admin.send("HSET", [`codex:thread:${orphanId}`, "owner", "gone-replica", "epoch", "3"]);
    const engine = fakeEngine(() => completedTurn("unused"));
    engine.threadExists = () => false;
    const here = await replica("threads-here", engine);
    const orphan = await here.post({ type: "user_message", thread_id: orphanId, message: "hello" });
    expect(orphan.status).toBe(503);
    expect(orphan.headers.get("retry-after")).toBe("5");
    expect(await errorOf(orphan)).toEqual({
      code: "thread_unavailable",
      message: `Thread ${orphanId} is stored on replica gone-replica, which is gone; its turns can run once it is back (or its rollout is moved).`,
    });
    const unknown = await here.post({ type: "user_message", thread_id: nowhereId, message: "hello" });
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toEqual({ code: "thread_not_found", message: `No codex thread ${nowhereId} is stored here.` });
  });

  test("a thread whose rollout is here is taken over from a gone owner, with a new epoch", async () => {
    const moved = crypto.randomUUID();
    await admin.send("HSET", [`codex:thread:${moved}`, "owner", "gone-replica", "epoch", "3"]);
    const engine = fakeEngine(() => completedTurn("resumed", moved));
    engine.threadExists = (threadId) => threadId === moved;
    const here = await replica("threads-new-home", engine);
    const resumed = await readSse(await here.post({ type: "user_message", thread_id: moved, message: "hello" }));
    expect(resumed.frames.at(-1)?.event).toBe("done");
    expect(await admin.send("HMGET", [`codex:thread:${moved}`, "owner", "epoch"])).toEqual(["threads-new-home", "4"]);
  });

  test("fencing: once another live replica holds a thread's lease, its old owner sends the thread's turns there and cannot claim it back", async () => {
    const threadId = crypto.randomUUID();
    const engine = (answer: string) => {
      const made = fakeEngine(() => completedTurn(answer, threadId));
      made.threadExists = (id) => id === threadId;
      return made;
    };
    const old = await replica("fence-old", engine("on the old owner"));
    const taker = await replica("fence-new", engine("on the new owner"));
    await readSse(await old.post({ type: "user_message", message: "first" }));
    await waitFor("the old owner's lease", async () => (await admin.send("HGET", [`codex:thread:${threadId}`, "owner"])) === "fence-old");
    // The thread changes hands (its rollout moved, the lease taken with the next epoch) while the old owner lives on.
    await admin.send("HSET", [`codex:thread:${threadId}`, "owner", "fence-new", "epoch", "2"]);
    const turn = await readSse(await old.post({ type: "user_message", thread_id: threadId, message: "again" }));
    expect(JSON.parse(turn.frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", final_response: "on the new owner" });
    expect(taker.runs.list()).toHaveLength(1);
    expect(await old.cluster?.store.claimThread(threadId)).toBeUndefined();
    expect(await admin.send("HMGET", [`codex:thread:${threadId}`, "owner", "epoch"])).toEqual(["fence-new", "2"]);
  });

  test("--cluster-max-turns caps the turns of all replicas together; a finished turn frees its slot", async () => {
    const engine = () => fakeEngine((request) => (request.input === "hang" ? hangingTurn(request) : completedTurn("ok")));
    const x = await replica("limit-x", engine(), { clusterMaxTurns: 1 });
    const y = await replica("limit-y", engine(), { clusterMaxTurns: 1 });
    const holding = sseReader(await x.post({ type: "user_message", id: "holds-slot", message: "hang" }));
    await holding.until((frame) => frame.event === "thread.started");
    const refused = await y.post({ type: "user_message", message: "say ok" });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(await errorOf(refused)).toEqual({ code: "too_many_turns", message: "The cluster's limit of 1 running turns is reached; try again later." });
    const cancelled = await y.app.request("/runs/holds-slot", { method: "DELETE" });
    expect(cancelled.status).toBe(200);
    await holding.rest();
    await waitFor("the slot to be free", async () => (await admin.send("ZSCORE", ["codex:slots", "holds-slot"])) === null);
    const admitted = await readSse(await y.post({ type: "user_message", message: "say ok" }));
    expect(admitted.frames.at(-1)?.event).toBe("done");
  });

  test("a turn waiting for its thread holds no cluster slot; it takes one as it leaves the queue, and waits while none is free", async () => {
    const threadId = crypto.randomUUID();
    const asked: Array<[runId: string, taken: boolean]> = [];
    const x = await replica("queue-x", fakeEngine((request) => (request.input === "hang" ? hangingTurn(request, threadId) : completedTurn(`done: ${request.input}`, threadId))), {
      clusterMaxTurns: 2,
      wrapStore: aroundTakeSlot(async (take, runId) => {
        const taken = await take();
        asked.push([runId, taken]);
        return taken;
      }),
    });
    const y = await replica("queue-y", fakeEngine((request) => hangingTurn(request, crypto.randomUUID())), { clusterMaxTurns: 2 });
    const first = sseReader(await x.post({ type: "user_message", id: "q-first", message: "hang" }));
    await first.until((frame) => frame.event === "thread.started");
    await waitFor("the thread's lease", async () => (await admin.send("HGET", [`codex:thread:${threadId}`, "owner"])) === "queue-x");
    const waiting = sseReader(await x.post({ type: "user_message", id: "q-waits", thread_id: threadId, message: "after", on_busy: "enqueue" }));
    await waiting.until((frame) => frame.event === "run.queued");
    expect(await admin.send("ZRANGE", ["codex:slots", "0", "-1"])).toEqual(["q-first"]);
    // The second slot is free for a turn elsewhere: the waiting one holds none.
    const other = sseReader(await y.post({ type: "user_message", id: "q-other", message: "hang" }));
    await other.until((frame) => frame.event === "thread.started");
    // Someone else takes the slot q-first leaves: the waiting turn, its thread free, must wait on.
    await admin.send("ZADD", ["codex:slots", String(Date.now() + 3_600_000), "q-someone"]);
    expect((await x.app.request("/runs/q-first", { method: "DELETE" })).status).toBe(200);
    await first.rest();
    await waitFor("q-waits to be refused a slot", () => asked.some(([id, taken]) => id === "q-waits" && !taken));
    expect(x.runs.get("q-waits")?.summary()).toMatchObject({ status: "queued", queue_position: 1 });
    expect(await admin.send("ZSCORE", ["codex:slots", "q-waits"])).toBeNull();
    // A slot comes free on no replica of this one's: the waiting turn finds it within ADMIT_RETRY_MS.
    await admin.send("ZREM", ["codex:slots", "q-someone"]);
    const done = await waiting.until((frame) => frame.event === "done", 5_000);
    expect(JSON.parse(done.frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", request_id: "q-waits", final_response: "done: after" });
    await waitFor("its slot to be freed with its end", async () => (await admin.send("ZRANGE", ["codex:slots", "0", "-1"])).length === 1);
    expect(await admin.send("ZRANGE", ["codex:slots", "0", "-1"])).toEqual(["q-other"]);
    // Ended here, so that its slot does not outlive the test.
    expect((await y.app.request("/runs/q-other", { method: "DELETE" })).status).toBe(200);
    await other.rest();
    await waitFor("no slot left", async () => (await admin.send("ZCARD", ["codex:slots"])) === 0);
  });

  test("a waiting turn stopped while its slots are being taken gives them back", async () => {
    const threadId = crypto.randomUUID();
    let enteredGate!: () => void;
    const entered = new Promise<void>((resolve) => (enteredGate = resolve));
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let tookSlot: boolean | undefined;
    const x = await replica("gate-x", fakeEngine((request) => hangingTurn(request, threadId)), {
      clusterMaxTurns: 2,
      wrapStore: aroundTakeSlot(async (take, runId) => {
        if (runId !== "g-waits") return take();
        enteredGate();
        await gate;
        tookSlot = await take();
        return tookSlot;
      }),
    });
    const first = sseReader(await x.post({ type: "user_message", id: "g-1", message: "first" }));
    await first.until((frame) => frame.event === "thread.started");
    await waitFor("the thread's lease", async () => (await admin.send("HGET", [`codex:thread:${threadId}`, "owner"])) === "gate-x");
    const waiting = sseReader(await x.post({ type: "user_message", id: "g-waits", thread_id: threadId, message: "later", on_busy: "enqueue" }));
    await waiting.until((frame) => frame.event === "run.queued");
    expect((await x.app.request("/runs/g-1", { method: "DELETE" })).status).toBe(200);
    await entered;
    expect((await x.app.request("/runs/g-waits", { method: "DELETE" })).status).toBe(200);
    expect(JSON.parse((await waiting.rest(5_000)).frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "cancelled", request_id: "g-waits" });
    await waitFor("g-waits's end in Redis", async () => ((await x.cluster?.store.run("g-waits"))?.summary.status ?? "") === "cancelled");
    // The slot is taken after the turn's end was written (which freed the ones it held then).
    openGate();
    await waitFor("the slot taken", () => tookSlot);
    await waitFor("no slot left", async () => (await admin.send("ZCARD", ["codex:slots"])) === 0);
    await first.rest();
    expect(x.runs.get("g-waits")?.summary().status).toBe("cancelled");
  });

  test("an edit or an interrupt takes the slot of the turn it replaces: at --cluster-max-turns neither is refused, and the limit holds after", async () => {
    const threadId = crypto.randomUUID();
    const engine = () => fakeEngine((request) => hangingTurn(request, threadId));
    const x = await replica("succeed-x", engine(), { clusterMaxTurns: 1 });
    const y = await replica("succeed-y", engine(), { clusterMaxTurns: 1 });
    const slots = () => admin.send("ZRANGE", ["codex:slots", "0", "-1"]);
    const first = sseReader(await x.post({ type: "user_message", id: "s-1", message: "first" }));
    await first.until((frame) => frame.event === "thread.started");
    await waitFor("the thread's lease", async () => (await admin.send("HGET", [`codex:thread:${threadId}`, "owner"])) === "succeed-x");
    // Edited through the other replica, and here.
    const edits: Array<[typeof x, string, string]> = [
      [y, "s-1", "s-2"],
      [x, "s-2", "s-3"],
    ];
    const readers = [first];
    for (const [on, old, id] of edits) {
      const edited = await on.app.request("/messages", {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": id },
        body: JSON.stringify({ type: "user_edit", id: old, message: "edited" }),
      });
      expect(edited.status).toBe(200);
      readers.push(sseReader(edited));
      await (readers.at(-1) as (typeof readers)[number]).until((frame) => frame.event === "thread.started");
      await waitFor(`${id} alone in the slots`, async () => JSON.stringify(await slots()) === JSON.stringify([id]));
    }
    const interrupting = await x.post({ type: "user_message", id: "s-4", thread_id: threadId, message: "instead", on_busy: "interrupt" });
    expect(interrupting.status).toBe(200);
    readers.push(sseReader(interrupting));
    await waitFor("s-4 alone in the slots", async () => JSON.stringify(await slots()) === JSON.stringify(["s-4"]));
    const refused = await y.post({ type: "user_message", message: "one too many" });
    expect(refused.status).toBe(429);
    expect((await errorOf(refused)).code).toBe("too_many_turns");
    expect((await x.app.request("/runs/s-4", { method: "DELETE" })).status).toBe(200);
    for (const reader of readers) expect(JSON.parse((await reader.rest(5_000)).frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "cancelled" });
    expect(x.runs.list().map((run) => run.summary().status)).toEqual(["cancelled", "cancelled", "cancelled", "cancelled"]);
    await waitFor("no slot left", async () => (await admin.send("ZCARD", ["codex:slots"])) === 0);
  });
});

describe.skipIf(!hasRedis)("a network split", () => {
  test("a replica whose connections to Redis go silent (not closed) refuses new turns within 2 s, then serves again by itself", async () => {
    const proxy = startTcpProxy(redis.port);
    try {
      const engine = fakeEngine((request) => (request.input === "hang" ? hangingTurn(request) : completedTurn("fine")));
      const cut = await replica("split-cut", engine, { url: proxy.url });
      const other = await replica("split-other", fakeEngine(() => completedTurn("unused")));
      expect((await readSse(await cut.post({ type: "user_message", message: "before" }))).frames.at(-1)?.event).toBe("done");
      proxy.cutOpenConnections();
      const started = performance.now();
      const refused = await cut.post({ type: "user_message", message: "during" });
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(refused.status).toBe(503);
      expect((await errorOf(refused)).code).toBe("store_unavailable");
      expect(((await (await cut.app.request("/ready")).json()) as { store: string }).store).toBe("down");
      // New connections pass again: the replica opens them on its own.
      await waitFor("the replica to be ready again", async () => (await cut.app.request("/ready")).status === 200, 10_000);
      const holding = sseReader(await cut.post({ type: "user_message", id: "after-split", message: "hang" }));
      await holding.until((frame) => frame.event === "thread.started");
      // Its command loop reads again too: a cancel from the other replica reaches it.
      expect((await other.app.request("/runs/after-split", { method: "DELETE" })).status).toBe(200);
      expect(JSON.parse((await holding.rest(5_000)).frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "cancelled" });
    } finally {
      proxy.stop();
    }
  }, 30_000);
});

describe.skipIf(!hasRedis)("tenants across replicas", () => {
  /** alice's first turn starts this thread; every other turn a new one. */
  const ALICE_THREAD = "019a0c4e-7d1b-7c3a-9e2f-4b5d6a7c8e9f";
  const threadOf = (input: string) => (input === "alice-1" ? ALICE_THREAD : crypto.randomUUID());
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "cluster-tenants-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Two replicas with the same tokens file; "hang" turns run until stopped, others complete on thread `t-<id>`. */
  async function pair(name: string, extra: Parameters<typeof writeTokensFile>[1] = {}) {
    const tokensFile = join(dir, `${name}.json`);
    writeTokensFile(tokensFile, extra);
    const engine = () =>
      fakeEngine((request) => (request.input === "hang" ? hangingTurn(request) : completedTurn(`hi ${request.input}`, request.threadId ?? threadOf(request.input))));
    const a = await replica(`${name}-a`, engine(), { tokensFile });
    const b = await replica(`${name}-b`, engine(), { tokensFile });
    const post = (on: typeof a, tenant: TenantName, body: Record<string, unknown>) =>
      on.app.request("/messages", { method: "POST", headers: { "content-type": "application/json", ...as(tenant) }, body: JSON.stringify(body) });
    const get = (on: typeof a, tenant: TenantName, path: string, init: RequestInit = {}) => on.app.request(path, { ...init, headers: as(tenant) });
    return { a, b, post, get };
  }

  test("a tenant's runs and threads are its own on every replica; another's answer the 404 of an unknown id; an admin sees them", async () => {
    const { a, b, post, get } = await pair("own");
    expect((await readSse(await post(a, "alice", { type: "user_message", id: "alice-run", message: "alice-1" }))).frames.at(-1)?.event).toBe("done");
    const unknown = await (await get(b, "bob", "/runs/no-such-run")).json();
    for (const path of ["/runs/alice-run", "/runs/alice-run/events"]) {
      const asBob = await get(b, "bob", path);
      expect(asBob.status).toBe(404);
      expect(await asBob.json()).toEqual(JSON.parse(JSON.stringify(unknown).replaceAll("no-such-run", "alice-run")));
      expect((await get(b, "alice", path)).status).toBe(200);
      expect((await get(b, "root", path)).status).toBe(200);
    }
    const listed = async (tenant: TenantName) => ((await (await get(b, tenant, "/runs")).json()) as { runs: { id: string }[] }).runs.map((run) => run.id);
    expect(await listed("bob")).toEqual([]);
    expect(await listed("alice")).toEqual(["alice-run"]);
    // The admin sees every run in Redis: the earlier tests' too (made without tenants, admins' only).
    expect(await listed("root")).toContain("alice-run");
    // The thread is alice's in Redis: bob cannot continue it through either replica; alice can, through the other.
    const bobs = await post(b, "bob", { type: "user_message", message: "bob-1", thread_id: ALICE_THREAD });
    expect(bobs.status).toBe(404);
    expect(await errorOf(bobs)).toEqual({ code: "thread_not_found", message: `No codex thread ${ALICE_THREAD} is stored here.` });
    expect((await post(a, "bob", { type: "user_message", message: "bob-1", thread_id: ALICE_THREAD })).status).toBe(404);
    const continued = await readSse(await post(b, "alice", { type: "user_message", message: "alice-2", thread_id: ALICE_THREAD }));
    expect(continued.frames.at(-1)?.event).toBe("done");
    expect(JSON.parse(continued.frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", thread_id: ALICE_THREAD, final_response: "hi alice-2" });
  });

  test("another tenant's running turn cannot be cancelled, edited or approved from another replica; its own tenant can cancel it", async () => {
    const { a, b, post, get } = await pair("cancel");
    const going = sseReader(await post(a, "alice", { type: "user_message", id: "alice-hang", message: "hang" }));
    await going.until((frame) => frame.event === "thread.started");
    expect((await get(b, "bob", "/runs/alice-hang", { method: "DELETE" })).status).toBe(404);
    expect((await post(b, "bob", { type: "user_cancel", id: "alice-hang" })).status).toBe(404);
    expect((await post(b, "bob", { type: "user_edit", id: "alice-hang", message: "mine now" })).status).toBe(404);
    expect(a.runs.get("alice-hang")?.running).toBe(true);
    expect(await (await get(b, "alice", "/runs/alice-hang", { method: "DELETE" })).json()).toEqual({ cancelled: "alice-hang" });
    expect(JSON.parse((await going.rest(5_000)).frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "cancelled" });
  });

  test("a tenant's turn waiting for its thread holds none of its slots: at its limit it queues, through the other replica too, as on one server", async () => {
    const tokensFile = join(dir, "queue.json");
    writeTokensFile(tokensFile, { alice: { max_concurrent_turns: 1 } });
    const thread = crypto.randomUUID();
    const engine = () => fakeEngine((request) => (request.input === "hang" ? hangingTurn(request, thread) : completedTurn(`hi ${request.input}`, thread)));
    const a = await replica("tq-a", engine(), { tokensFile });
    const b = await replica("tq-b", engine(), { tokensFile });
    const post = (on: typeof a, body: Record<string, unknown>) =>
      on.app.request("/messages", { method: "POST", headers: { "content-type": "application/json", ...as("alice") }, body: JSON.stringify(body) });
    const going = sseReader(await post(a, { type: "user_message", id: "tq-1", message: "hang" }));
    await going.until((frame) => frame.event === "thread.started");
    await waitFor("the thread's lease", async () => (await admin.send("HGET", [`codex:thread:${thread}`, "owner"])) === "tq-a");
    // Through the other replica: the owner queues it behind tq-1, and it holds no slot of alice's.
    const queued = await post(b, { type: "user_message", id: "tq-2", thread_id: thread, message: "after", on_busy: "enqueue" });
    expect(queued.status).toBe(200);
    const waiting = sseReader(queued);
    await waiting.until((frame) => frame.event === "run.queued");
    expect(await admin.send("ZRANGE", ["codex:slots:tenant:alice", "0", "-1"])).toEqual(["tq-1"]);
    expect((await a.app.request("/runs/tq-1", { method: "DELETE", headers: as("alice") })).status).toBe(200);
    const done = await waiting.until((frame) => frame.event === "done", 5_000);
    expect(JSON.parse(done.frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", request_id: "tq-2", final_response: "hi after" });
    await going.rest();
    await waitFor("alice's slots to be free", async () => (await admin.send("ZRANGE", ["codex:slots:tenant:alice", "0", "-1"])).length === 0);
  });

  test("another tenant's finished run keeps its id on every replica: bob reusing alice's is 409 id_in_use, and hers stays readable", async () => {
    const { a, b, post, get } = await pair("taken");
    expect((await readSse(await post(a, "alice", { type: "user_message", id: "taken-id", message: "alice-1" }))).frames.at(-1)?.event).toBe("done");
    // Until its end is in Redis, the other replica takes it for running (409 all the same).
    await waitFor("the end in Redis", async () => ((await (await get(b, "alice", "/runs/taken-id")).json()) as { status: string }).status === "completed");
    for (const on of [b, a]) {
      const refused = await post(on, "bob", { type: "user_message", id: "taken-id", message: "bob-1" });
      expect({ status: refused.status, body: await refused.json() }).toEqual({
        status: 409,
        body: { error: { code: "id_in_use", message: "the id taken-id is taken; use another" } },
      });
    }
    expect(await (await get(b, "alice", "/runs/taken-id")).json()).toMatchObject({ id: "taken-id", status: "completed" });
    expect(a.runs.get("taken-id")?.turn.input).toBe("alice-1");
    expect((await readSse(await post(b, "alice", { type: "user_message", id: "taken-id", message: "alice-2" }))).frames.at(-1)?.event).toBe("done");
  });

  test("max_concurrent_turns counts a tenant's turns on every replica; other tenants are not held up by it", async () => {
    const { a, b, post, get } = await pair("limit", { alice: { max_concurrent_turns: 1 } });
    const going = sseReader(await post(a, "alice", { type: "user_message", id: "alice-first", message: "hang" }));
    await going.until((frame) => frame.event === "thread.started");
    const second = await post(b, "alice", { type: "user_message", id: "alice-second", message: "alice-2" });
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).toBe("5");
    expect(await errorOf(second)).toEqual({ code: "tenant_turn_limit", message: "tenant alice already runs its limit of 1 turns; try again later" });
    expect((await readSse(await post(b, "bob", { type: "user_message", message: "bob-1" }))).frames.at(-1)?.event).toBe("done");
    expect((await get(a, "alice", "/runs/alice-first", { method: "DELETE" })).status).toBe(200);
    await going.rest(5_000);
    // Its slot goes in the same write as its end: once another replica sees it ended, alice may run again.
    await waitFor("the end in Redis", async () => ((await (await get(b, "alice", "/runs/alice-first")).json()) as { status: string }).status === "cancelled");
    const third = await readSse(await post(b, "alice", { type: "user_message", id: "alice-third", message: "alice-3" }));
    expect(JSON.parse(third.frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed" });
  });
});
