/**
 * Tenants through createApp with a fake engine: each tenant sees only its own runs and threads
 * (another's answer exactly as an unknown id's), admins see everything, workspace roots, per-tenant
 * turn limits (queued turns among them), log lines and metrics by tenant, never a token.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AppDeps } from "../src/app-types";
import { type EngineEvent, type ThreadEvent, type TurnRequest } from "../src/engine/types";
import { createLogger } from "../src/log";
import { createMetrics } from "../src/metrics";
import { Tenants } from "../src/tenants/tenants";
import { MAX_LIST_ROUNDS, ThreadAccess } from "../src/tenants/thread-access";
import { SqliteThreadOwners } from "../src/tenants/thread-owners";
import { readTokensFile } from "../src/tenants/tokens-file";
import type { ThreadList } from "../src/schemas";
import { setup } from "./fixtures/app-setup";
import { type FakeStoredThread, fakeEngine, fakeThreadStore, USAGE } from "./fixtures/fake-engine";
import { readSse, sseReader } from "./fixtures/sse";
import { as, type TenantName, TOKENS, writeTokensFile } from "./fixtures/tenants";
import { waitFor } from "./fixtures/wait-for";

const scratch = mkdtempSync(join(tmpdir(), "tenants-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const JSON_TYPE = { "content-type": "application/json" };

const threadId = (n: number) => `01a213ec-28be-7ba3-89bc-${String(n).padStart(12, "0")}`;
const UNOWNED = threadId(999);

function storedThread(id: string): FakeStoredThread {
  return { id, name: null, preview: "hi", cwd: "/work", createdAt: 1_790_000_000, updatedAt: 1_790_000_000, turns: [] };
}

/**
 * The app with the three tenants. The engine's turns start a new thread (threadId(1), (2), ...)
 * or continue theirs; a message starting with "hold" waits for `release(thread)` or its stop,
 * "ask" waits for an approval; anything else completes at once.
 */
function tenantApp({
  extra = {},
  config = {},
  maxConcurrent = 100,
  storedThreads = [UNOWNED],
}: {
  extra?: Parameters<typeof writeTokensFile>[1];
  config?: Parameters<typeof setup>[1];
  maxConcurrent?: number;
  storedThreads?: string[];
} = {}) {
  const dir = mkdtempSync(join(scratch, "app-"));
  const path = join(dir, "tokens.json");
  writeTokensFile(path, extra);
  const logs: string[] = [];
  const tenants = Tenants.fromFile(path, readTokensFile(path).tenants, createLogger("info", (line) => void logs.push(line)));
  const threadOwners = new SqliteThreadOwners(":memory:");
  const store = fakeThreadStore(storedThreads.map(storedThread));
  const releases = new Map<string, () => void>();
  let threads = 0;
  const metrics = createMetrics({ activeTurns: () => 0, queuedTurns: () => 0, activeCodexProcesses: () => 0, retainedRuns: () => 0, retainedRunBytes: () => 0, pendingWebhookDeliveries: () => 0 });
  const pendingApprovals = new Map<string, () => void>();
  async function* turn(request: TurnRequest): AsyncGenerator<EngineEvent> {
    const thread = request.threadId ?? threadId(++threads);
    yield { type: "thread.started", thread_id: thread };
    if (request.input.startsWith("hold") || request.input.startsWith("ask")) {
      if (request.input.startsWith("ask")) yield { type: "approval.requested", approval_id: `approval-${thread}`, kind: "command_execution", command: "ls" };
      const stopped = new Promise<void>((resolve) => request.signal.addEventListener("abort", () => resolve(), { once: true }));
      const released = new Promise<void>((resolve) => {
        releases.set(thread, resolve);
        pendingApprovals.set(`approval-${thread}`, resolve);
      });
      await Promise.race([released, stopped]);
      if (request.signal.aborted) throw new Error("The operation was aborted.");
    }
    const events: ThreadEvent[] = [
      { type: "turn.started" },
      { type: "item.completed", item: { id: "item_0", type: "agent_message", text: "ok" } },
      { type: "turn.completed", usage: USAGE },
    ];
    yield* events;
  }
  const engine = {
    ...fakeEngine(turn, store),
    resolveApproval: (approvalId: string) => {
      const resolve = pendingApprovals.get(approvalId);
      pendingApprovals.delete(approvalId);
      resolve?.();
      return resolve !== undefined;
    },
  };
  const tenancy: NonNullable<AppDeps["tenancy"]> = { tenants, threadOwners };
  const { app, runs } = setup(engine, config, maxConcurrent, { metrics, tenancy }, logs);
  /** The same app with none of the runs or threads: what any request gets for an unknown id. */
  const empty = setup(fakeEngine(turn, fakeThreadStore([])), config, maxConcurrent, { tenancy: { tenants, threadOwners: new SqliteThreadOwners(":memory:") } }).app;
  const streams: Response[] = [];
  const request = async (tenant: TenantName, path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
    app.request(path, { ...init, headers: { ...as(tenant), ...init.headers } });
  const answer = async (tenant: TenantName, path: string, init: RequestInit & { headers?: Record<string, string> } = {}, on = app) => {
    const res = await on.request(path, { ...init, headers: { ...as(tenant), ...init.headers } });
    return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
  };
  /** What `tenant` gets for this request from an app where the id is unknown. */
  const asUnknown = (tenant: TenantName, path: string, init: RequestInit & { headers?: Record<string, string> } = {}) => answer(tenant, path, init, empty);
  const post = (tenant: TenantName, body: unknown, requestId?: string) =>
    request(tenant, "/messages", { method: "POST", headers: { ...JSON_TYPE, ...(requestId && { "x-request-id": requestId }) }, body: JSON.stringify(body) });
  /** Starts a turn that holds until released; its stream is kept (and read at the end). */
  const hold = async (tenant: TenantName, id: string, extraBody: Record<string, unknown> = {}, message = "hold") => {
    const res = await post(tenant, { type: "user_message", message, id, ...extraBody });
    expect(res.status).toBe(200);
    streams.push(res);
    await waitFor(`${id} to start its thread`, () => runs.get(id)?.threadId);
    return { res, thread: runs.get(id)?.threadId as string };
  };
  return { app, runs, engine, store, logs, metrics, tenants, threadOwners, releases, path, request, answer, asUnknown, post, hold, streams };
}

const sameAsUnknown = async (t: ReturnType<typeof tenantApp>, tenant: TenantName, path: string, init: RequestInit & { headers?: Record<string, string> } = {}) => {
  const got = await t.answer(tenant, path, init);
  expect(got.status).toBe(404);
  expect(got).toEqual(await t.asUnknown(tenant, path, init));
  return got;
};

describe("runs", () => {
  test("another tenant's run is unknown to GET /runs, /runs/{id}, /runs/{id}/events, DELETE, user_cancel and user_edit; an admin sees and cancels it", async () => {
    const t = tenantApp();
    const { thread } = await t.hold("alice", "a1");
    await t.hold("bob", "b1");
    const listed = async (tenant: TenantName) => ((await (await t.request(tenant, "/runs")).json()) as { runs: Array<{ id: string }> }).runs.map((run) => run.id);
    expect(await listed("alice")).toEqual(["a1"]);
    expect(await listed("bob")).toEqual(["b1"]);
    expect(await listed("root")).toEqual(["a1", "b1"]);

    expect((await sameAsUnknown(t, "bob", "/runs/a1")).body).toBe('{"error":{"code":"run_not_found","message":"No turn with id a1 is running or recently finished."}}');
    await sameAsUnknown(t, "bob", "/runs/a1/events");
    await sameAsUnknown(t, "bob", "/runs/a1", { method: "DELETE" });
    const bodies = [
      { type: "user_cancel", id: "a1" },
      { type: "user_edit", id: "a1", message: "edited by bob" },
    ];
    for (const body of bodies) {
      const got = await sameAsUnknown(t, "bob", "/messages", { method: "POST", headers: JSON_TYPE, body: JSON.stringify(body) });
      expect(got.body).toBe('{"error":{"code":"run_not_found","message":"No turn with id a1 is running."}}');
    }
    expect(t.runs.get("a1")?.summary().status).toBe("running");
    expect(t.engine.calls.map((call) => call.input)).toEqual(["hold", "hold"]);
    expect(await t.threadOwners.ownerOf(thread)).toBe("alice");

    // Its owner and an admin see it; the admin cancels it.
    expect((await t.request("alice", "/runs/a1")).status).toBe(200);
    expect((await t.request("root", "/runs/a1")).status).toBe(200);
    const events = await t.request("root", "/runs/a1/events");
    expect(await t.answer("root", "/runs/a1", { method: "DELETE" })).toMatchObject({ status: 200, body: '{"cancelled":"a1"}' });
    const { frames } = await readSse(events);
    expect(JSON.parse(frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "cancelled", request_id: "a1" });
    expect(await t.answer("root", "/messages", { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ type: "user_cancel", id: "b1" }) })).toMatchObject({
      status: 200,
      body: '{"cancelled":"b1"}',
    });
    await Promise.all(t.streams.map((res) => res.text()));
  });

  test("another tenant's finished run keeps its id: reusing it is 409 id_in_use, and the run stays readable; its own tenant may reuse it", async () => {
    const t = tenantApp();
    expect((await readSse(await t.post("alice", { type: "user_message", message: "say one", id: "shared" }))).frames.at(-1)?.event).toBe("done");
    for (const [tenant, body] of [
      ["bob", { type: "user_message", message: "say mine", id: "shared" }],
      ["root", { type: "user_message", message: "say mine", id: "shared" }],
      ["bob", { type: "user_message", message: "say mine" }],
    ] as const) {
      const refused = await t.post(tenant, body, "shared");
      expect({ status: refused.status, body: await refused.json() }).toEqual({
        status: 409,
        body: { error: { code: "id_in_use", message: "the id shared is taken; use another" } },
      });
    }
    expect(await (await t.request("alice", "/runs/shared")).json()).toMatchObject({ id: "shared", status: "completed" });
    const again = await readSse(await t.post("alice", { type: "user_message", message: "say two", id: "shared" }));
    expect(JSON.parse(again.frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", request_id: "shared" });
    expect(t.engine.calls.map((call) => call.input)).toEqual(["say one", "say two"]);
  });

  test("a tenant edits and cancels its own run", async () => {
    const t = tenantApp();
    await t.hold("alice", "a1");
    const edited = await t.post("alice", { type: "user_edit", id: "a1", message: "say edited" }, "a2");
    expect(edited.status).toBe(200);
    const { frames } = await readSse(edited);
    expect(JSON.parse(frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", replaces: "a1" });
    await t.hold("alice", "a3");
    expect(await t.answer("alice", "/runs/a3", { method: "DELETE" })).toMatchObject({ status: 200 });
    await Promise.all(t.streams.map((res) => res.text()));
  });

  test("user_confirm: another tenant's approval is an unknown run's; the owner answers it", async () => {
    const t = tenantApp({ config: { approvalPolicy: "on-request", bypassApprovalsAndSandbox: false } });
    const stream = sseReader(await t.post("alice", { type: "user_message", message: "ask", id: "a1" }));
    const { frames } = await stream.until((frame) => frame.event === "approval.requested", 5_000);
    const approvalId = JSON.parse(frames.at(-1)?.data ?? "{}").approval_id;
    const confirm = { type: "user_confirm", id: "a1", approval_id: approvalId, decision: "approve" };
    const init = { method: "POST", headers: JSON_TYPE, body: JSON.stringify(confirm) };
    expect((await sameAsUnknown(t, "bob", "/messages", init)).body).toBe('{"error":{"code":"run_not_found","message":"No turn with id a1 is running."}}');
    expect(await t.answer("alice", "/messages", init)).toMatchObject({ status: 200, body: `{"approval_id":"${approvalId}","decision":"approve"}` });
    await stream.rest(5_000);
  });
});

describe("threads", () => {
  /** alice's and bob's threads (a finished turn each), and one nobody owns. */
  async function withThreads() {
    const t = tenantApp({ storedThreads: [threadId(1), threadId(2), UNOWNED] });
    for (const tenant of ["alice", "bob"] as const) {
      const res = await t.post(tenant, { type: "user_message", message: "say hi" });
      await readSse(res);
    }
    expect(await t.threadOwners.ownerOf(threadId(1))).toBe("alice");
    expect(await t.threadOwners.ownerOf(threadId(2))).toBe("bob");
    return t;
  }
  const ids = async (t: ReturnType<typeof tenantApp>, tenant: TenantName) =>
    ((await (await t.request(tenant, "/threads")).json()) as ThreadList).threads.map((thread) => thread.id);

  test("GET /threads lists a tenant's own threads; an admin's, every one (those nobody owns too)", async () => {
    const t = await withThreads();
    expect(await ids(t, "alice")).toEqual([threadId(1)]);
    expect(await ids(t, "bob")).toEqual([threadId(2)]);
    expect(await ids(t, "root")).toEqual([threadId(1), threadId(2), UNOWNED]);
  });

  test("another tenant's thread, or one nobody owns, is unknown to GET, PATCH, DELETE, fork and a turn's thread_id; codex is not asked", async () => {
    const t = await withThreads();
    const calls = t.store.calls.length;
    const turns = t.engine.calls.length;
    for (const [tenant, thread] of [["bob", threadId(1)], ["alice", UNOWNED]] as const) {
      const got = await sameAsUnknown(t, tenant, `/threads/${thread}`);
      expect(got.body).toBe(`{"error":{"code":"thread_not_found","message":"No codex thread ${thread} is stored here."}}`);
      await sameAsUnknown(t, tenant, `/threads/${thread}`, { method: "PATCH", headers: JSON_TYPE, body: '{"name":"mine now"}' });
      await sameAsUnknown(t, tenant, `/threads/${thread}`, { method: "DELETE" });
      await sameAsUnknown(t, tenant, `/threads/${thread}/fork`, { method: "POST" });
      for (const on_busy of ["reject", "enqueue", "interrupt"]) {
        const body = JSON.stringify({ type: "user_message", message: "say mine", thread_id: thread, on_busy });
        await sameAsUnknown(t, tenant, "/messages", { method: "POST", headers: JSON_TYPE, body });
      }
    }
    expect(t.store.calls.length).toBe(calls);
    expect(t.engine.calls.length).toBe(turns);
    expect(await ids(t, "root")).toEqual([threadId(1), threadId(2), UNOWNED]);
  });

  test("the owner and an admin read, rename, continue, fork and archive it; a fork is the forking tenant's", async () => {
    const t = await withThreads();
    const thread = threadId(1);
    expect((await t.request("alice", `/threads/${thread}`)).status).toBe(200);
    expect((await t.request("root", `/threads/${thread}`)).status).toBe(200);
    expect((await t.request("alice", `/threads/${thread}`, { method: "PATCH", headers: JSON_TYPE, body: '{"name":"A"}' })).status).toBe(200);
    const turn = await t.post("alice", { type: "user_message", message: "say again", thread_id: thread });
    expect(JSON.parse((await readSse(turn)).frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", thread_id: thread });
    // An admin's turn on it leaves it alice's.
    await readSse(await t.post("root", { type: "user_message", message: "say root", thread_id: thread }));
    expect(await t.threadOwners.ownerOf(thread)).toBe("alice");

    const forked = await t.request("root", `/threads/${thread}/fork`, { method: "POST" });
    expect(forked.status).toBe(201);
    const fork = ((await forked.json()) as { thread_id: string }).thread_id;
    expect(await t.threadOwners.ownerOf(fork)).toBe("root");
    const forkOfUnowned = await t.request("root", `/threads/${UNOWNED}/fork`, { method: "POST" });
    expect(forkOfUnowned.status).toBe(201);

    expect(await t.answer("alice", `/threads/${thread}`, { method: "DELETE" })).toMatchObject({ status: 200 });
    expect(await t.threadOwners.ownerOf(thread)).toBeUndefined();
  });
});

describe("ThreadAccess.list", () => {
  // Twelve threads, newest first; alice owns 2, 5, 6 and 11.
  const all = Array.from({ length: 12 }, (_, index) => threadId(index));
  const mine = new Set([2, 5, 6, 11].map(threadId));
  /** codex's list: pages by position, its cursor the position after the page. */
  function codexList() {
    const asked: Array<{ limit: number; cursor: string | undefined }> = [];
    const list = async ({ limit, cursor }: { limit: number; cursor?: string }): Promise<ThreadList> => {
      asked.push({ limit, cursor });
      const from = cursor === undefined ? 0 : Number(cursor);
      const page = all.slice(from, from + limit);
      const next = from + limit < all.length ? String(from + limit) : null;
      return { threads: page.map((id) => ({ id, name: null, preview: "", cwd: "/", created_at: "", updated_at: "", status: "idle" })), next_cursor: next };
    };
    return { list, asked };
  }
  const owners = {
    ownerOf: async (id: string) => (mine.has(id) ? "alice" : "bob"),
    claim: async () => {},
    forget: async () => {},
    close: () => {},
  };
  const access = new ThreadAccess(owners);

  test("pages of exactly `limit` of the tenant's threads, each cursor right after the last one given: none skipped, none repeated", async () => {
    const { list, asked } = codexList();
    const seen: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await access.list({ limit: 2, ...(cursor !== undefined && { cursor }) }, { name: "alice", admin: false }, list);
      seen.push(page.threads.map((thread) => thread.id));
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
    expect(seen).toEqual([
      [threadId(2), threadId(5)],
      [threadId(6), threadId(11)],
    ]);
    // Each of codex's pages asks only for the threads still missing, so none is read past the last kept.
    expect(asked).toEqual([
      { limit: 2, cursor: undefined },
      { limit: 2, cursor: "2" },
      { limit: 1, cursor: "4" },
      { limit: 1, cursor: "5" },
      { limit: 2, cursor: "6" },
      { limit: 1, cursor: "8" },
      { limit: 1, cursor: "9" },
      { limit: 1, cursor: "10" },
      { limit: 1, cursor: "11" },
    ]);
  });

  test("an admin's page is codex's, in one request", async () => {
    const { list, asked } = codexList();
    expect((await access.list({ limit: 5 }, { name: "root", admin: true }, list)).threads).toHaveLength(5);
    expect(asked).toEqual([{ limit: 5, cursor: undefined }]);
  });

  test(`after ${MAX_LIST_ROUNDS} of codex's pages the page is short, and its cursor goes on from there`, async () => {
    const { list, asked } = codexList();
    const page = await access.list({ limit: 1 }, { name: "carol", admin: false }, list);
    expect(page).toEqual({ threads: [], next_cursor: String(MAX_LIST_ROUNDS) });
    expect(asked).toHaveLength(MAX_LIST_ROUNDS);
    expect(await access.list({ limit: 1, cursor: String(MAX_LIST_ROUNDS) }, { name: "carol", admin: false }, list)).toEqual({ threads: [], next_cursor: null });
  });
});

describe("workspace roots", () => {
  test("a tenant's workspace root is its default work_dir and bounds its work_dir (403 work_dir_forbidden); another tenant keeps the server's rules", async () => {
    const aliceRoot = realpathSync(mkdtempSync(join(scratch, "alice-root-")));
    mkdirSync(join(aliceRoot, "project"));
    const elsewhere = realpathSync(mkdtempSync(join(scratch, "elsewhere-")));
    const t = tenantApp({ extra: { alice: { workspace_root: aliceRoot } }, config: { defaultWorkDir: elsewhere } });
    await readSse(await t.post("alice", { type: "user_message", message: "say hi" }));
    await readSse(await t.post("alice", { type: "user_message", message: "say hi", work_dir: join(aliceRoot, "project") }));
    expect(await t.answer("alice", "/messages", { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ type: "user_message", message: "say hi", work_dir: elsewhere }) })).toEqual({
      status: 403,
      type: "application/json",
      body: '{"error":{"code":"work_dir_forbidden","message":"work_dir: must be inside your workspace root."}}',
    });
    await readSse(await t.post("bob", { type: "user_message", message: "say hi", work_dir: elsewhere }));
    await readSse(await t.post("bob", { type: "user_message", message: "say hi" }));
    expect(t.engine.calls.map((call) => call.workDir)).toEqual([aliceRoot, join(aliceRoot, "project"), elsewhere, elsewhere]);
  });
});

describe("max_concurrent_turns", () => {
  test("a tenant at its limit gets 429 tenant_turn_limit with Retry-After, apart from the server's limit and from other tenants", async () => {
    const t = tenantApp({ extra: { alice: { max_concurrent_turns: 1 } }, maxConcurrent: 3 });
    const { thread } = await t.hold("alice", "a1");
    const refused = await t.post("alice", { type: "user_message", message: "say more" });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(await refused.text()).toBe('{"error":{"code":"tenant_turn_limit","message":"tenant alice already runs its limit of 1 turns; try again later"}}');
    await t.hold("bob", "b1");
    await t.hold("bob", "b2");
    // The server's own limit (3) is reached now: that is the other 429.
    const full = await t.post("root", { type: "user_message", message: "say more" });
    expect(full.status).toBe(429);
    expect(((await full.json()) as { error: { code: string } }).error.code).toBe("too_many_turns");
    // Once alice's turn ends, she has her slot again.
    t.releases.get(thread)?.();
    await waitFor("a1 to end", () => t.runs.get("a1")?.running === false);
    for (const id of ["b1", "b2"]) t.runs.get(id)?.stop("cancelled");
    await waitFor("b1 and b2 to end", () => t.runs.size === 0);
    await readSse(await t.post("alice", { type: "user_message", message: "say more" }));
    await Promise.all(t.streams.map((res) => res.text()));
  });

  test("queued turns take no slot of the tenant's while they wait, and start only when their tenant has one free", async () => {
    const t = tenantApp({ extra: { alice: { max_concurrent_turns: 1 } } });
    const { thread: mine } = await t.hold("alice", "a1");
    // Waiting on her own running thread is no new slot: the turn queues, not 429.
    const queued = sseReader(await t.post("alice", { type: "user_message", message: "say queued", thread_id: mine, on_busy: "enqueue" }, "a2"));
    await queued.until((frame) => frame.event === "run.queued", 5_000);
    // root runs a turn on another thread of alice's, and alice queues behind it.
    const other = threadId(9);
    await t.threadOwners.claim(other, "alice");
    await t.hold("root", "r1", { thread_id: other });
    const behindRoot = sseReader(await t.post("alice", { type: "user_message", message: "say behind root", thread_id: other, on_busy: "enqueue" }, "a3"));
    await behindRoot.until((frame) => frame.event === "run.queued", 5_000);
    // root's turn ends: alice is still at her limit (a1), so a3 keeps waiting, with its thread free.
    t.releases.get(other)?.();
    await waitFor("r1 to end", () => t.runs.get("r1")?.running === false);
    expect(t.runs.get("a3")?.summary()).toMatchObject({ status: "queued", queue_position: 1 });
    // A new turn of alice's on that thread waits behind a3 rather than overtaking it.
    const after = sseReader(await t.post("alice", { type: "user_message", message: "say after", thread_id: other, on_busy: "enqueue" }, "a4"));
    await after.until((frame) => frame.event === "run.queued", 5_000);
    expect(t.runs.get("a4")?.summary()).toMatchObject({ status: "queued", queue_position: 2 });
    // a1 ends: its slot goes to a2 (its thread's next), a3 still waits; then a2's to a3, and a3's to a4.
    t.releases.get(mine)?.();
    for (const read of [queued, behindRoot, after]) {
      const { frames } = await read.until((frame) => frame.event === "done", 5_000);
      expect(JSON.parse(frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed" });
    }
    expect(t.engine.calls.map((call) => call.input)).toEqual(["hold", "hold", "say queued", "say behind root", "say after"]);
    await Promise.all(t.streams.map((res) => res.text()));
  });
});

describe("logs and metrics", () => {
  test("log lines name the tenant; no token appears in a log line or an error", async () => {
    const t = tenantApp();
    await readSse(await t.post("alice", { type: "user_message", message: "say hi" }, "a1"));
    await waitFor("the turn's line", () => t.logs.some((line) => line.includes("turn finished")));
    const wrong = await t.app.request("/runs", { headers: { authorization: `Bearer ${TOKENS.alice}x` } });
    expect(await wrong.text()).toBe('{"error":{"code":"unauthorized","message":"The bearer token is not valid."}}');
    writeTokensFile(t.path, {}, { alice: "not a token" });
    t.tenants.reload();
    const lines = t.logs.map((line) => line.replace(/^\S+ /, "").replace(/duration_ms=[\d.]+/, "duration_ms=N"));
    expect(lines).toEqual([
      "INFO  POST /messages status=200 duration_ms=N request_id=a1 tenant=alice\n",
      `INFO  turn finished request_id=a1 tenant=alice thread_id=${threadId(1)} status=completed duration_ms=N\n`,
      "INFO  GET /runs status=401 duration_ms=N request_id=generated-id\n",
      `ERROR tokens file not reloaded, the 3 tenants before stay: tokens file ${t.path}: tokens[0].token (alice): has characters an Authorization header cannot carry (spaces, control characters or non-ASCII); use visible ASCII, e.g. \`openssl rand -hex 32\`\n`,
    ]);
    for (const token of Object.values(TOKENS)) expect(t.logs.join("")).not.toContain(token);
  });

  test("/metrics counts turns and their tokens by tenant", async () => {
    const t = tenantApp();
    await readSse(await t.post("alice", { type: "user_message", message: "say hi" }));
    await readSse(await t.post("alice", { type: "user_message", message: "say hi" }));
    await readSse(await t.post("bob", { type: "user_message", message: "say hi" }));
    const text = await (await t.request("root", "/metrics")).text();
    for (const line of [
      'codex_tenant_turns_total{tenant="alice",status="completed"} 2',
      'codex_tenant_turns_total{tenant="bob",status="completed"} 1',
      'codex_tenant_tokens_total{tenant="alice",kind="input"} 20',
      'codex_tenant_tokens_total{tenant="alice",kind="cached_input"} 4',
      'codex_tenant_tokens_total{tenant="alice",kind="output"} 10',
      'codex_tenant_tokens_total{tenant="alice",kind="reasoning_output"} 2',
      'codex_tenant_tokens_total{tenant="bob",kind="input"} 10',
    ]) {
      expect(text).toContain(`\n${line}\n`);
    }
  });
});
