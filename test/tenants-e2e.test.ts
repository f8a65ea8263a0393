/**
 * Tenants against the real server and codex with the scripted model, both engines: alice and bob
 * see only their own runs and threads (another's answers exactly as an unknown id), root sees and
 * cancels everything.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ENGINES } from "../src/config";
import { readTokensFile } from "../src/tenants/tokens-file";
import { readSse, sseReader } from "./fixtures/sse";
import { as, type TenantName, writeTokensFile } from "./fixtures/tenants";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { agentTexts, doneOf } from "./fixtures/turns";

const JSON_TYPE = { "content-type": "application/json" };
const runNotFound = (id: string, finished = true) =>
  `{"error":{"code":"run_not_found","message":"No turn with id ${id} is running${finished ? " or recently finished" : ""}."}}`;
const threadNotFound = (id: string) => `{"error":{"code":"thread_not_found","message":"No codex thread ${id} is stored here."}}`;

for (const engine of ENGINES) describe(`${engine} engine`, () => {
  let server: TestServer;
  let dir: string;
  beforeAll(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), "tenants-e2e-")));
    const path = join(dir, "tokens.json");
    writeTokensFile(path);
    server = startTestServer({
      engine,
      tokensFile: { path, tenants: readTokensFile(path).tenants },
      stateDir: join(dir, "state"),
      // Where codex can ask, so that user_confirm has something to answer.
      ...(engine === "app-server" && { bypassApprovalsAndSandbox: false, approvalPolicy: "on-request" as const }),
    });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (tenant: TenantName, path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
    fetch(`${server.url}${path}`, { ...init, headers: { ...as(tenant), ...init.headers } });
  const answer = async (tenant: TenantName, path: string, init: RequestInit & { headers?: Record<string, string> } = {}) => {
    const res = await call(tenant, path, init);
    return { status: res.status, body: await res.text() };
  };
  const message = (tenant: TenantName, body: Record<string, unknown>) =>
    call(tenant, "/messages", { method: "POST", headers: JSON_TYPE, body: JSON.stringify(body) });
  const post = (tenant: TenantName, body: Record<string, unknown>) =>
    answer(tenant, "/messages", { method: "POST", headers: JSON_TYPE, body: JSON.stringify(body) });
  const runIds = async (tenant: TenantName) => ((await (await call(tenant, "/runs")).json()) as { runs: Array<{ id: string }> }).runs.map((run) => run.id);
  const threadIds = async (tenant: TenantName) =>
    ((await (await call(tenant, "/threads?limit=100")).json()) as { threads: Array<{ id: string }> }).threads.map((thread) => thread.id);

  test("runs: another tenant's is unknown to GET /runs, /runs/{id}, its events, DELETE, user_cancel and user_edit; root sees and cancels it", async () => {
    const a1 = `${engine}-a1`;
    const { frames } = await readSse(await message("alice", { type: "user_message", message: "say from alice", id: a1 }));
    expect(doneOf(frames).status).toBe("completed");
    expect(await runIds("alice")).toContain(a1);
    expect(await runIds("root")).toContain(a1);
    expect(await runIds("bob")).not.toContain(a1);
    expect(await answer("bob", `/runs/${a1}`)).toEqual({ status: 404, body: runNotFound(a1) });
    expect(await answer("bob", `/runs/${a1}/events`)).toEqual({ status: 404, body: runNotFound(a1) });

    const a2 = `${engine}-a2`;
    const running = sseReader(await message("alice", { type: "user_message", message: "sleep 60000 too late", id: a2 }));
    await running.until((frame) => frame.event === "thread.started");
    const requests = server.model.requests.length;
    expect(await answer("bob", `/runs/${a2}`, { method: "DELETE" })).toEqual({ status: 404, body: runNotFound(a2, false) });
    expect(await post("bob", { type: "user_cancel", id: a2 })).toEqual({ status: 404, body: runNotFound(a2, false) });
    expect(await post("bob", { type: "user_edit", id: a2, message: "say bob's now" })).toEqual({ status: 404, body: runNotFound(a2, false) });
    expect(await answer("alice", `/runs/${a2}`)).toMatchObject({ status: 200, body: expect.stringContaining('"status":"running"') });
    expect(server.model.requests.length).toBe(requests);

    expect(await answer("root", `/runs/${a2}`, { method: "DELETE" })).toEqual({ status: 200, body: `{"cancelled":"${a2}"}` });
    expect(doneOf((await running.rest()).frames)).toMatchObject({ status: "cancelled", request_id: a2 });
  });

  test("threads: another tenant's is unknown to the list, GET, PATCH, DELETE, fork and a turn's thread_id; the owner forks, root sees all", async () => {
    const turn = async (tenant: TenantName, text: string) => doneOf((await readSse(await message(tenant, { type: "user_message", message: `say ${text}` }))).frames);
    const alices = (await turn("alice", "alice's")).thread_id as string;
    const bobs = (await turn("bob", "bob's")).thread_id as string;
    // alice has the threads of the test before too; bob has only this one.
    expect(await threadIds("alice")).toContain(alices);
    expect(await threadIds("alice")).not.toContain(bobs);
    expect(await threadIds("bob")).toEqual([bobs]);
    expect(await threadIds("root")).toEqual(expect.arrayContaining([alices, bobs]));

    const requests = server.model.requests.length;
    expect(await answer("bob", `/threads/${alices}`)).toEqual({ status: 404, body: threadNotFound(alices) });
    expect(await answer("bob", `/threads/${alices}`, { method: "PATCH", headers: JSON_TYPE, body: '{"name":"bob was here"}' })).toEqual({ status: 404, body: threadNotFound(alices) });
    expect(await answer("bob", `/threads/${alices}/fork`, { method: "POST" })).toEqual({ status: 404, body: threadNotFound(alices) });
    expect(await answer("bob", `/threads/${alices}`, { method: "DELETE" })).toEqual({ status: 404, body: threadNotFound(alices) });
    expect(await post("bob", { type: "user_message", message: "say into alice's", thread_id: alices })).toEqual({ status: 404, body: threadNotFound(alices) });
    expect(server.model.requests.length).toBe(requests);

    // Still alice's, as she left it; she continues it.
    const read = (await (await call("alice", `/threads/${alices}`)).json()) as { name: string | null; turns: unknown[] };
    expect(read).toMatchObject({ name: null, turns: [expect.anything()] });
    const again = await readSse(await message("alice", { type: "user_message", message: "say again", thread_id: alices }));
    expect(agentTexts(again.frames)).toEqual(["again"]);

    // A fork is the forking tenant's: alice's fork of her own thread is hers, not bob's.
    const forked = await call("alice", `/threads/${alices}/fork`, { method: "POST" });
    expect(forked.status).toBe(201);
    const fork = ((await forked.json()) as { thread_id: string }).thread_id;
    expect((await call("alice", `/threads/${fork}`)).status).toBe(200);
    expect(await answer("bob", `/threads/${fork}`)).toEqual({ status: 404, body: threadNotFound(fork) });
    expect((await call("root", `/threads/${bobs}`)).status).toBe(200);
    expect(await answer("root", `/threads/${bobs}`, { method: "DELETE" })).toEqual({ status: 200, body: `{"id":"${bobs}","archived":true}` });
  });

  if (engine === "app-server") {
    test("user_confirm: another tenant's approval is an unknown run's", async () => {
      const workDir = realpathSync(mkdtempSync(join(dir, "work-")));
      const id = "confirm-a1";
      const stream = sseReader(await message("alice", { type: "user_message", message: "escalate echo asked", work_dir: workDir, id }));
      const { frames } = await stream.until((frame) => frame.event === "approval.requested");
      const approvalId = JSON.parse(frames.at(-1)?.data ?? "{}").approval_id as string;
      expect(await post("bob", { type: "user_confirm", id, approval_id: approvalId, decision: "approve" })).toEqual({ status: 404, body: runNotFound(id, false) });
      expect(await post("alice", { type: "user_confirm", id, approval_id: approvalId, decision: "deny" })).toEqual({
        status: 200,
        body: `{"approval_id":"${approvalId}","decision":"deny"}`,
      });
      expect(doneOf((await stream.rest()).frames).status).toBe("completed");
    });
  }
});
