/**
 * Replicas through Redis: real server processes (each its own CODEX_HOME, one scripted model) and
 * one real redis-server. Whatever one replica started, the other replays, follows, cancels and
 * continues; a replica that dies has its turns ended by a survivor; Redis down means 503, then
 * recovery without a restart.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CliProcess, startCli } from "./fixtures/cli-process";
import { type CodexHome, createCodexHome } from "./fixtures/codex-home";
import { type MockModel, startMockModel } from "./fixtures/mock-model";
import { redisServerInstalled, startRedis, type TestRedis } from "./fixtures/redis-server";
import { parseSse, readSse, sseReader } from "./fixtures/sse";
import { agentTexts, doneOf, postMessage } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";


const hasRedis = redisServerInstalled("cluster.test.ts");
let redis: TestRedis;
let model: MockModel;
const homes: CodexHome[] = [];
const replicas: CliProcess[] = [];

/**
 * A replica: its own CODEX_HOME, the shared Redis and model. Its temporary files go under its HOME,
 * removed with it: a replica killed outright (SIGKILL) cannot remove its own (its lsb_release shim).
 */
async function startReplica(id: string, extra: string[] = []): Promise<CliProcess> {
  const home = createCodexHome(model.url);
  homes.push(home);
  const cli = await startCli(["-a", "127.0.0.1:0", "--redis-url", redis.url, "--replica-id", id, ...extra], { ...home.env, TMPDIR: home.home, RUST_LOG: "info" });
  replicas.push(cli);
  return cli;
}

/** The frames of an SSE body, heartbeats left out, as the bytes a client got. */
const framesText = (raw: string) => parseSse(raw).frames.map((frame) => `event: ${frame.event}\ndata: ${frame.data}\nid: ${frame.id}\n\n`).join("");

let a: CliProcess;
let b: CliProcess;

beforeAll(async () => {
  if (!hasRedis) return;
  redis = await startRedis();
  model = startMockModel();
  [a, b] = await Promise.all([startReplica("a"), startReplica("b")]);
});

afterAll(async () => {
  if (!hasRedis) return;
  await Promise.all(replicas.map((replica) => (replica.process.exitCode === null ? replica.stop() : undefined)));
  await redis.kill();
  await model.stop();
  for (const home of homes) home.remove();
}, 15_000);

describe.skipIf(!hasRedis)("a run started on one replica", () => {
  test("replays and follows from the other with the same ids and bytes, and is listed there", async () => {
    const posted = await postMessage(a.url, { type: "user_message", id: "shared-1", message: "stream one two three four five" });
    expect(posted.status).toBe(200);
    const onA = sseReader(posted);
    await onA.until((frame) => frame.event === "thread.started");
    // Followed live from the other replica, from the start.
    const followed = await fetch(`${b.url}/runs/shared-1/events`);
    expect(followed.status).toBe(200);
    const [ownerRaw, followedRaw] = await Promise.all([onA.rest(), readSse(followed)]);
    const ownerFrames = framesText(ownerRaw.raw);
    expect(doneOf(ownerRaw.frames).status).toBe("completed");
    expect(framesText(followedRaw.raw)).toBe(ownerFrames);
    // Replayed after a Last-Event-ID, from the other replica.
    const replay = await readSse(await fetch(`${b.url}/runs/shared-1/events`, { headers: { "last-event-id": "2" } }));
    expect(framesText(replay.raw)).toBe(framesText(ownerRaw.raw.slice(ownerRaw.raw.indexOf("id: 2\n\n") + "id: 2\n\n".length)));
    expect(replay.frames[0]?.id).toBe("3");
    // A client that claims more than there is still gets done.
    const past = await readSse(await fetch(`${b.url}/runs/shared-1/events`, { headers: { "last-event-id": "999" } }));
    expect(past.frames.map((frame) => frame.event)).toEqual(["done"]);
    // The same summary on both.
    const [summaryA, summaryB] = await Promise.all([fetch(`${a.url}/runs/shared-1`), fetch(`${b.url}/runs/shared-1`)]);
    expect(summaryB.status).toBe(200);
    expect(await summaryB.json()).toEqual(await summaryA.json());
    const listed = (await (await fetch(`${b.url}/runs`)).json()) as { runs: { id: string; status: string }[] };
    expect(listed.runs.find((run) => run.id === "shared-1")?.status).toBe("completed");
  }, 60_000);

  test("an unknown run is 404 on every replica", async () => {
    const response = await fetch(`${b.url}/runs/nowhere`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: { code: "run_not_found", message: "No turn with id nowhere is running or recently finished." } });
  });

  test("is cancelled from the other replica: the owner stops it within 1 s", async () => {
    const posted = await postMessage(a.url, { type: "user_message", id: "cancel-me", message: "sleep 20000 late" });
    const onA = sseReader(posted);
    await onA.until((frame) => frame.event === "turn.started");
    const started = performance.now();
    const cancelled = await fetch(`${b.url}/runs/cancel-me`, { method: "DELETE" });
    expect(cancelled.status).toBe(200);
    expect(await cancelled.json()).toEqual({ cancelled: "cancel-me" });
    const rest = await onA.rest(5_000);
    expect(doneOf(rest.frames).status).toBe("cancelled");
    expect(performance.now() - started).toBeLessThan(1_500);
    // Nothing left to cancel, from either.
    const again = await postMessage(b.url, { type: "user_cancel", id: "cancel-me" });
    expect(again.status).toBe(404);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe("run_not_found");
  }, 30_000);

  test("its thread continues through the other replica: the turn runs on the owner, streamed through the receiver", async () => {
    const first = await readSse(await postMessage(a.url, { type: "user_message", message: "say remember me" }));
    const threadId = doneOf(first.frames).thread_id as string;
    expect(threadId).toBeString();
    const through = await postMessage(b.url, { type: "user_message", id: "through-b", thread_id: threadId, message: "count" });
    expect(through.status).toBe(200);
    const second = await readSse(through);
    // Two user messages in the history the model was sent: the earlier one is there.
    expect(agentTexts(second.frames)).toEqual(["2"]);
    expect(doneOf(second.frames)).toMatchObject({ status: "completed", thread_id: threadId });
    // The run is the owner's: it has it in its registry, and the same frames.
    const onOwner = await readSse(await fetch(`${a.url}/runs/through-b/events`));
    expect(framesText(onOwner.raw)).toBe(framesText(second.raw));
  }, 60_000);
});

describe.skipIf(!hasRedis)("approvals with codex (app-server, bypass off, on-request)", () => {
  test("an approval that codex asks on one replica is answered through the other", async () => {
    const approving = ["--engine", "app-server", "--dangerously-bypass-approvals-and-sandbox", "false", "--approval-policy", "on-request"];
    const [asker, answerer] = await Promise.all([startReplica("asks", approving), startReplica("answers", approving)]);
    const workDir = realpathSync(mkdtempSync(join(tmpdir(), "cluster-approvals-")));
    // Outside every directory codex's sandbox lets a command write.
    const outside = mkdtempSync("/var/tmp/cluster-approvals-");
    const file = join(outside, "approved.txt");
    try {
      const posted = await postMessage(asker.url, { type: "user_message", id: "asks-1", message: `escalate touch ${file} && echo wrote`, work_dir: workDir });
      const stream = sseReader(posted);
      const before = await stream.until((frame) => frame.event === "approval.requested");
      const approvalId = JSON.parse(before.frames.at(-1)?.data ?? "{}").approval_id as string;
      expect(existsSync(file)).toBe(false);
      const confirmed = await postMessage(answerer.url, { type: "user_confirm", id: "asks-1", approval_id: approvalId, decision: "approve" });
      expect(confirmed.status).toBe(200);
      expect(await confirmed.json()).toEqual({ approval_id: approvalId, decision: "approve" });
      const rest = await stream.rest();
      expect(JSON.parse(rest.frames.find((frame) => frame.event === "approval.resolved")?.data ?? "{}")).toEqual({
        type: "approval.resolved",
        approval_id: approvalId,
        decision: "approve",
        by: "client",
      });
      expect(agentTexts(rest.frames)).toEqual(["ran: wrote"]);
      expect(existsSync(file)).toBe(true);
    } finally {
      await Promise.all([asker.stop(), answerer.stop()]);
      rmSync(workDir, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  }, 60_000);
});

describe.skipIf(!hasRedis)("failures", () => {
  test("a replica that cannot reach Redis at start-up still starts: its banner and /ready say so, /health is 200", async () => {
    const home = createCodexHome(model.url);
    homes.push(home);
    // A port nothing listens on: connecting is refused at once.
    const unreachable = await startCli(["-a", "127.0.0.1:0", "--redis-url", "redis://:hunter2@127.0.0.1:1", "--replica-id", "alone"], home.env);
    try {
      expect(unreachable.stdout()).toContain("Replicas: alone via redis://:***@127.0.0.1:1 (UNREACHABLE: new turns get 503 until it answers)");
      expect(unreachable.stdout() + unreachable.stderr()).not.toContain("hunter2");
      expect((await fetch(`${unreachable.url}/health`)).status).toBe(200);
      const ready = await fetch(`${unreachable.url}/ready`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: "not_ready", codex_login: "ok", store: "down" });
      const refused = await postMessage(unreachable.url, { type: "user_message", message: "say hi" });
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("store_unavailable");
    } finally {
      await unreachable.stop();
    }
  }, 30_000);

  test("SIGKILL of the owner ends its watchers' streams with done error within 15 s", async () => {
    const doomed = await startReplica("doomed");
    const posted = await postMessage(doomed.url, { type: "user_message", id: "orphan", message: "sleep 60000 never" });
    const onOwner = sseReader(posted);
    await onOwner.until((frame) => frame.event === "turn.started");
    const watching = sseReader(await fetch(`${b.url}/runs/orphan/events`));
    await watching.until((frame) => frame.event === "turn.started");
    void onOwner.cancel().catch(() => {});
    doomed.process.kill("SIGKILL");
    await doomed.process.exited;
    const killedAt = performance.now();
    const rest = await watching.rest(20_000);
    expect(performance.now() - killedAt).toBeLessThan(15_000);
    const done = doneOf(rest.frames);
    expect(done).toMatchObject({ status: "error", request_id: "orphan" });
    expect(String(done.error)).toStartWith("replica lost");
    expect(rest.frames.filter((frame) => frame.event === "done")).toHaveLength(1);
    // Exactly one done, whoever swept it.
    const replay = await readSse(await fetch(`${a.url}/runs/orphan/events`));
    expect(replay.frames.filter((frame) => frame.event === "done")).toHaveLength(1);
    expect(((await (await fetch(`${a.url}/runs/orphan`)).json()) as { status: string }).status).toBe("error");
  }, 40_000);

  test("Redis killed: new turns get 503 store_unavailable within 2 s, /ready 503, /health 200; back without a restart", async () => {
    await redis.kill();
    await waitFor("/ready to say the store is down", async () => (await fetch(`${b.url}/ready`)).status === 503, 5_000);
    const ready = await fetch(`${b.url}/ready`);
    expect(((await ready.json()) as { store: string }).store).toBe("down");
    expect((await fetch(`${b.url}/health`)).status).toBe(200);
    const started = performance.now();
    const refused = await postMessage(b.url, { type: "user_message", message: "say never" });
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("store_unavailable");
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    expect(metrics).toContain("\ncodex_store_up 0\n");
    expect(metrics).toMatch(/\ncodex_store_errors_total\{operation="\w+"\} [1-9]/);
    await redis.restart();
    await waitFor("/ready to be 200 again", async () => (await fetch(`${b.url}/ready`)).status === 200, 10_000);
    const after = await readSse(await postMessage(b.url, { type: "user_message", message: "say back again" }));
    expect(agentTexts(after.frames)).toEqual(["back again"]);
    expect(await (await fetch(`${b.url}/metrics`)).text()).toContain("\ncodex_store_up 1\n");
  }, 40_000);
});
