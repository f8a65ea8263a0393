/**
 * Webhooks from the real server and codex (the scripted model) to a receiver on 127.0.0.1: run.done
 * with retries, a request's own webhook_url, approval.requested on app-server, and shutdown.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { approvalRequestedWebhookSchema, type DoneData, runDoneWebhookSchema } from "../src/schemas";
import { readSse, sseReader } from "./fixtures/sse";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { doneOf } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";
import { type ReceivedHook, startWebhookReceiver, TEST_WEBHOOK_SECRET, verifyWebhook, type WebhookReceiver } from "./fixtures/webhook-receiver";

const hooksOf = (receiver: WebhookReceiver, type: string, runId: string) =>
  receiver.received.filter((hook) => hook.json.type === type && (hook.json.data.id ?? hook.json.data.run_id) === runId);

describe("exec engine: --webhook-url and a request's webhook_url", () => {
  let server: TestServer;
  let hooks: WebhookReceiver;
  /** Per run id, what the receiver answers each attempt; 204 once the list is used up. */
  const answers = new Map<string, number[]>();

  beforeAll(() => {
    hooks = startWebhookReceiver((hook) => answers.get(String(hook.json.data.id))?.shift() ?? 204);
    server = startTestServer(
      { webhookUrl: hooks.url, webhookSecret: TEST_WEBHOOK_SECRET, webhookAllowedHosts: ["127.0.0.1"] },
      { webhookRetryDelaysMs: [50, 50] },
    );
  });
  afterAll(async () => {
    await server.close();
    await hooks.stop();
  });

  test("run.done, signed, after a 500 then success: the same webhook-id, and the stream's done in it", async () => {
    answers.set("hook-1", [500]);
    const { frames } = await readSse(await server.send({ type: "user_message", message: "say hooked", id: "hook-1" }));
    await waitFor("the retried run.done", () => hooksOf(hooks, "run.done", "hook-1").length === 2);
    const [first, second] = hooksOf(hooks, "run.done", "hook-1") as [ReceivedHook, ReceivedHook];
    expect(second.headers["webhook-id"]).toBe(first.headers["webhook-id"] as string);
    expect(second.body).toBe(first.body);
    for (const hook of [first, second]) expect(verifyWebhook(TEST_WEBHOOK_SECRET, hook)).toBe(true);
    const { data } = runDoneWebhookSchema.strict().parse(second.json);
    const summary = (await (await fetch(`${server.url}/runs/hook-1`)).json()) as { started_at: string; finished_at: string };
    expect(data).toEqual({ id: "hook-1", ...(doneOf(frames) as DoneData), started_at: summary.started_at, finished_at: summary.finished_at });
    expect(data.status).toBe("completed");

    await waitFor("the delivery to be counted", async () => (await (await fetch(`${server.url}/metrics`)).text()).includes('codex_webhook_deliveries_total{event="run.done",result="delivered"}'));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('\ncodex_webhook_retries_total{event="run.done"} 1\n');
    expect(metrics).toContain('\ncodex_webhook_deliveries_total{event="run.done",result="delivered"} 1\n');
    expect(metrics).toContain("\ncodex_webhook_deliveries_pending 0\n");
  });

  test("a 400: no retry, counted as failed, one log line naming the run", async () => {
    answers.set("hook-2", [400]);
    await readSse(await server.send({ type: "user_message", message: "fail", id: "hook-2" }));
    await waitFor("the failure to be logged", () => server.logs.some((line) => line.includes("webhook not delivered") && line.includes("run_id=hook-2")));
    expect(hooksOf(hooks, "run.done", "hook-2")).toHaveLength(1);
    expect(runDoneWebhookSchema.parse(hooksOf(hooks, "run.done", "hook-2")[0]?.json).data.status).toBe("failed");
    expect(await (await fetch(`${server.url}/metrics`)).text()).toContain('\ncodex_webhook_deliveries_total{event="run.done",result="failed"} 1\n');
    expect(server.logs.join("")).not.toContain(TEST_WEBHOOK_SECRET.slice("whsec_".length));
  });

  test("a request's own webhook_url on an allowed host gets the hooks too", async () => {
    const own = startWebhookReceiver(() => 204);
    try {
      await readSse(await server.send({ type: "user_message", message: "say mine", id: "hook-3", webhook_url: `${own.url}/mine` }));
      await waitFor("both receivers", () => own.received.length === 1 && hooksOf(hooks, "run.done", "hook-3").length === 1);
      expect(own.received[0]?.path).toBe("/hooks/mine");
      expect(verifyWebhook(TEST_WEBHOOK_SECRET, own.received[0] as ReceivedHook)).toBe(true);
      expect(own.received[0]?.headers["webhook-id"]).toBe(hooksOf(hooks, "run.done", "hook-3")[0]?.headers["webhook-id"] as string);
    } finally {
      await own.stop();
    }
  });

  test("a webhook_url for a host not allowed: 422, and no turn", async () => {
    const requests = server.model.requests.length;
    const res = await server.send({ type: "user_message", message: "say never", id: "hook-4", webhook_url: "http://localhost:1/x" });
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({ error: { code: "invalid_request", message: "webhook_url: localhost is not a host that --webhook-allowed-hosts lists." } });
    expect((await fetch(`${server.url}/runs/hook-4`)).status).toBe(404);
    expect(server.model.requests).toHaveLength(requests);
  });

  test("a receiver that does not answer never holds up the turn or its stream", async () => {
    const silent = startWebhookReceiver(() => new Promise<number>(() => {}));
    try {
      const started = performance.now();
      const { frames } = await readSse(await server.send({ type: "user_message", message: "say quick", id: "hook-5", webhook_url: silent.url }));
      expect(doneOf(frames).status).toBe("completed");
      // The hook was sent as the turn ended, and is still waiting for its answer (5 s).
      await waitFor("the hook to arrive", () => silent.received.length === 1);
      expect(performance.now() - started).toBeLessThan(4_000);
    } finally {
      await silent.stop();
    }
  });
});

describe("app-server engine: approval.requested", () => {
  let server: TestServer;
  let hooks: WebhookReceiver;
  let workDir: string;
  let outside: string;

  beforeAll(() => {
    hooks = startWebhookReceiver(() => 204);
    server = startTestServer({
      engine: "app-server",
      bypassApprovalsAndSandbox: false,
      approvalPolicy: "on-request",
      webhookSecret: TEST_WEBHOOK_SECRET,
      webhookAllowedHosts: ["127.0.0.1"],
    });
    workDir = realpathSync(mkdtempSync(join(tmpdir(), "hooks-approvals-")));
    outside = mkdtempSync("/var/tmp/codex-hooks-");
  });
  afterAll(async () => {
    await server.close();
    await hooks.stop();
    rmSync(workDir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  test("delivered as codex asks; a client answers from the hook alone, and run.done follows", async () => {
    const file = join(outside, "approved.txt");
    const stream = sseReader(
      await server.send({ type: "user_message", message: `escalate touch ${file} && echo wrote`, work_dir: workDir, id: "hook-ap-1", webhook_url: hooks.url }),
    );
    await waitFor("approval.requested", () => hooksOf(hooks, "approval.requested", "hook-ap-1").length === 1);
    const hook = hooksOf(hooks, "approval.requested", "hook-ap-1")[0] as ReceivedHook;
    expect(verifyWebhook(TEST_WEBHOOK_SECRET, hook)).toBe(true);
    const { data } = approvalRequestedWebhookSchema.strict().parse(hook.json);
    expect(data).toEqual({
      run_id: "hook-ap-1",
      thread_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      approval_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      kind: "command_execution",
      command: `/bin/bash -lc 'touch ${file} && echo wrote'`,
      cwd: workDir,
      reason: "the test asks to run it outside the sandbox",
    });
    const answer = await server.send({ type: "user_confirm", id: data.run_id, approval_id: data.approval_id, decision: "approve" });
    expect(answer.status).toBe(200);
    const { frames } = await stream.rest();
    expect(doneOf(frames)).toMatchObject({ status: "completed", final_response: "ran: wrote" });
    await waitFor("run.done", () => hooksOf(hooks, "run.done", "hook-ap-1").length === 1);
    expect(runDoneWebhookSchema.parse(hooksOf(hooks, "run.done", "hook-ap-1")[0]?.json).data.thread_id).toBe(data.thread_id);
  });
});

describe("graceful shutdown", () => {
  let hooks: WebhookReceiver;
  afterEach(async () => {
    await hooks.stop();
  });

  test("a delivery waiting to retry is tried once more before the server stops, and delivered", async () => {
    hooks = startWebhookReceiver((_, n) => (n === 0 ? 503 : 204));
    const server = startTestServer({ webhookUrl: hooks.url, webhookSecret: TEST_WEBHOOK_SECRET }, { webhookRetryDelaysMs: [600_000] });
    try {
      await readSse(await server.send({ type: "user_message", message: "say bye", id: "hook-bye" }));
      await waitFor("the first attempt to fail", () => server.logs.some((line) => line.includes("webhook attempt failed, retrying")));
    } finally {
      await server.close();
    }
    expect(hooks.received.map((hook) => hook.json.type)).toEqual(["run.done", "run.done"]);
    expect(hooks.received[1]?.headers["webhook-id"]).toBe(hooks.received[0]?.headers["webhook-id"] as string);
    expect(server.logs.some((line) => line.includes("webhook not delivered"))).toBe(false);
  });

  test("a turn cancelled at shutdown still announces its end", async () => {
    hooks = startWebhookReceiver(() => 204);
    const server = startTestServer({ webhookUrl: hooks.url, webhookSecret: TEST_WEBHOOK_SECRET, shutdownTimeoutMs: 200 });
    const stream = sseReader(await server.send({ type: "user_message", message: "sleep 60000 never", id: "hook-cut" }));
    await stream.until((frame) => frame.event === "turn.started");
    await server.close();
    expect(doneOf((await stream.rest()).frames).status).toBe("cancelled");
    expect(hooks.received.map((hook) => [hook.json.type, hook.json.data.status])).toEqual([["run.done", "cancelled"]]);
  });
});
