/**
 * Webhooks against a receiver on 127.0.0.1: signatures, retries, refusals, shutdown; and the runs
 * and routes that feed them (a fake engine). test/webhooks-e2e.test.ts has them with real codex.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createLogger } from "../src/log";
import { RunRegistry } from "../src/runs/registry";
import type { EngineEvent, ThreadEvent } from "../src/engine/types";
import { approvalRequestedWebhookSchema, runDoneWebhookSchema } from "../src/schemas";
import { type DeliveryObserver, WebhookDispatcher, type WebhookEventType, type WebhookMessage } from "../src/webhooks/dispatcher";
import { runWebhooks } from "../src/webhooks/run-webhooks";
import { parseWebhookSecret, signWebhook } from "../src/webhooks/signature";
import { setup } from "./fixtures/app-setup";
import { completedTurn, fakeEngine, hangingTurn } from "./fixtures/fake-engine";
import { parseSse } from "./fixtures/sse";
import { waitFor } from "./fixtures/wait-for";
import { type HookAnswer, type ReceivedHook, startWebhookReceiver, TEST_WEBHOOK_SECRET, verifyWebhook, type WebhookReceiver } from "./fixtures/webhook-receiver";

const KEY = parseWebhookSecret(TEST_WEBHOOK_SECRET);
const MESSAGE: WebhookMessage = { type: "run.done", runId: "run-1", data: { id: "run-1", status: "completed" } };

describe("signatures", () => {
  test("the Standard Webhooks test vector", () => {
    const key = parseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    expect(signWebhook(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')).toBe("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  });

  test.each([
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"],
    ["whsec_not base64!", "must be whsec_ followed by base64"],
    ["whsec_abc", "must be whsec_ followed by base64"],
    [`whsec_${Buffer.alloc(16).toString("base64")}`, "must hold 24 to 64 bytes of key, not 16"],
    [`whsec_${Buffer.alloc(65).toString("base64")}`, "must hold 24 to 64 bytes of key, not 65"],
  ])("%p is refused: %p", (secret, message) => {
    expect(() => parseWebhookSecret(secret)).toThrow(message);
  });
});

/** Counts what the dispatcher reports, as /metrics would. */
function counting() {
  const counts = { delivered: 0, retried: 0, failed: 0 };
  const observer: DeliveryObserver = {
    webhookDelivered: (_: WebhookEventType) => void counts.delivered++,
    webhookRetried: () => void counts.retried++,
    webhookFailed: () => void counts.failed++,
  };
  return { counts, observer };
}

describe("WebhookDispatcher", () => {
  let receiver: WebhookReceiver;
  let dispatcher: WebhookDispatcher;
  let logs: string[];
  let counts: ReturnType<typeof counting>["counts"];

  function start(script: (hook: ReceivedHook, index: number) => HookAnswer, options: { retryDelaysMs?: number[]; attemptTimeoutMs?: number } = {}) {
    receiver = startWebhookReceiver(script);
    logs = [];
    const counter = counting();
    counts = counter.counts;
    dispatcher = new WebhookDispatcher({
      key: KEY,
      log: createLogger("debug", (line) => void logs.push(line)),
      observer: counter.observer,
      retryDelaysMs: options.retryDelaysMs ?? [10, 10, 10],
      ...(options.attemptTimeoutMs !== undefined && { attemptTimeoutMs: options.attemptTimeoutMs }),
      jitter: (delay) => delay,
      newId: () => "00000000-0000-4000-8000-000000000001",
    });
  }
  const settled = () => waitFor("the delivery to end", () => dispatcher.pendingCount === 0);

  afterEach(async () => {
    await dispatcher.close(0);
    await receiver.stop();
  });

  test("a signed POST that verifies with the secret: Standard Webhooks headers, the payload as type, timestamp and data", async () => {
    start(() => 204);
    const before = Math.floor(Date.now() / 1000);
    dispatcher.send([`${receiver.url}?token=in-the-query`], MESSAGE);
    await settled();
    const [hook] = receiver.received as [ReceivedHook];
    expect(verifyWebhook(TEST_WEBHOOK_SECRET, hook)).toBe(true);
    expect(verifyWebhook(TEST_WEBHOOK_SECRET, { ...hook, body: hook.body.replace("completed", "failed") })).toBe(false);
    expect(hook.headers).toMatchObject({
      "content-type": "application/json",
      "user-agent": expect.stringMatching(/^codex-http-server\/\d+\.\d+\.\d+$/),
      "webhook-id": "msg_00000000-0000-4000-8000-000000000001",
      "webhook-signature": expect.stringMatching(/^v1,[A-Za-z0-9+/]{43}=$/),
    });
    expect(Number(hook.headers["webhook-timestamp"])).toBeGreaterThanOrEqual(before);
    expect(Number(hook.headers["webhook-timestamp"])).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    expect(hook.json).toEqual({ type: "run.done", timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), data: MESSAGE.data });
    expect(counts).toEqual({ delivered: 1, retried: 0, failed: 0 });
    // The log names the run, the message and the host; never the secret, the key, nor the URL's path or query.
    expect(logs).toEqual([
      expect.stringMatching(
        new RegExp(`DEBUG webhook delivered event=run.done run_id=run-1 webhook_id=msg_0{8}-0{4}-4000-8000-0{11}1 host=127.0.0.1:${receiver.port} attempt=1 status=204\\n$`),
      ),
    ]);
    for (const secret of [TEST_WEBHOOK_SECRET, TEST_WEBHOOK_SECRET.slice(6), "in-the-query", "/hooks"]) expect(logs.join("")).not.toContain(secret);
  });

  test("a 500, then 503, then success: retried with the same webhook-id and body, each attempt signed anew", async () => {
    start((_, n) => [500, 503][n] ?? 200);
    dispatcher.send([receiver.url], MESSAGE);
    await settled();
    expect(receiver.received).toHaveLength(3);
    expect(new Set(receiver.received.map((hook) => hook.headers["webhook-id"]))).toEqual(new Set(["msg_00000000-0000-4000-8000-000000000001"]));
    expect(new Set(receiver.received.map((hook) => hook.body)).size).toBe(1);
    for (const hook of receiver.received) expect(verifyWebhook(TEST_WEBHOOK_SECRET, hook)).toBe(true);
    expect(counts).toEqual({ delivered: 1, retried: 2, failed: 0 });
    expect(logs.filter((line) => line.includes("INFO  webhook attempt failed, retrying"))).toEqual([
      expect.stringContaining("attempt=1 error=\"answered 500\" retry_in_ms=10\n"),
      expect.stringContaining("attempt=2 error=\"answered 503\" retry_in_ms=10\n"),
    ]);
  });

  test("429 is retried too", async () => {
    start((_, n) => (n === 0 ? 429 : 200));
    dispatcher.send([receiver.url], MESSAGE);
    await settled();
    expect(receiver.received).toHaveLength(2);
    expect(counts).toEqual({ delivered: 1, retried: 1, failed: 0 });
  });

  test.each([400, 401, 404, 410, 422])("a %d: no retry, failed, and the log says why", async (status) => {
    start(() => status);
    dispatcher.send([receiver.url], MESSAGE);
    await settled();
    expect(receiver.received).toHaveLength(1);
    expect(counts).toEqual({ delivered: 0, retried: 0, failed: 1 });
    expect(logs.at(-1)).toMatch(new RegExp(` WARN  webhook not delivered event=run.done run_id=run-1 .* attempts=1 error="answered ${status}"\\n$`));
  });

  test("every attempt failing: one more attempt than there are delays, then failed", async () => {
    start(() => 500, { retryDelaysMs: [5, 5] });
    dispatcher.send([receiver.url], MESSAGE);
    await settled();
    expect(receiver.received).toHaveLength(3);
    expect(counts).toEqual({ delivered: 0, retried: 2, failed: 1 });
    expect(logs.at(-1)).toContain('attempts=3 error="answered 500"');
  });

  test("a redirect is not followed, not even to an allowed place: failed at once", async () => {
    const elsewhere = startWebhookReceiver(() => 204);
    try {
      start(() => new Response(null, { status: 307, headers: { location: elsewhere.url } }));
      dispatcher.send([receiver.url], MESSAGE);
      await settled();
      expect(receiver.received).toHaveLength(1);
      expect(elsewhere.received).toHaveLength(0);
      expect(counts).toEqual({ delivered: 0, retried: 0, failed: 1 });
      expect(logs.at(-1)).toContain('error="answered 307 (redirects are not followed)"');
    } finally {
      await elsewhere.stop();
    }
  });

  test("no answer within the attempt timeout: retried", async () => {
    let release!: () => void;
    const held = new Promise<number>((resolve) => (release = () => resolve(200)));
    start((_, n) => (n === 0 ? held : 200), { attemptTimeoutMs: 100 });
    dispatcher.send([receiver.url], MESSAGE);
    await settled();
    release();
    expect(receiver.received).toHaveLength(2);
    expect(counts).toEqual({ delivered: 1, retried: 1, failed: 0 });
    expect(logs.find((line) => line.includes("retrying"))).toContain('error="no answer within 0.1 s"');
  });

  test("nobody listening: retried, then failed", async () => {
    start(() => 204, { retryDelaysMs: [5] });
    await receiver.stop();
    dispatcher.send([receiver.url], MESSAGE);
    await settled();
    expect(counts).toEqual({ delivered: 0, retried: 1, failed: 1 });
    expect(logs.at(-1)).toMatch(/attempts=2 error="could not deliver: /);
  });

  test("one message to two URLs: one delivery each, the same webhook-id", async () => {
    start(() => 204);
    dispatcher.send([`${receiver.url}/a`, `${receiver.url}/b`], MESSAGE);
    await settled();
    expect(receiver.received.map((hook) => hook.path).sort()).toEqual(["/hooks/a", "/hooks/b"]);
    expect(receiver.received[0]?.headers["webhook-id"]).toBe(receiver.received[1]?.headers["webhook-id"] as string);
    expect(counts.delivered).toBe(2);
  });

  describe("close (shutdown)", () => {
    test("a delivery waiting to retry tries once more at once, and is delivered", async () => {
      start((_, n) => (n === 0 ? 500 : 204), { retryDelaysMs: [600_000] });
      dispatcher.send([receiver.url], MESSAGE);
      await waitFor("the first attempt to fail", () => counts.retried === 1);
      await dispatcher.close(5_000);
      expect(receiver.received).toHaveLength(2);
      expect(counts).toEqual({ delivered: 1, retried: 1, failed: 0 });
    });

    test("after that attempt, no retry whose wait passes the deadline", async () => {
      start(() => 500, { retryDelaysMs: [600_000, 600_000] });
      dispatcher.send([receiver.url], MESSAGE);
      await waitFor("the first attempt to fail", () => counts.retried === 1);
      await dispatcher.close(5_000);
      expect(receiver.received).toHaveLength(2);
      expect(counts).toEqual({ delivered: 0, retried: 1, failed: 1 });
      expect(logs.at(-1)).toContain('attempts=2 error="answered 500; the server is shutting down before the next attempt"');
    });

    test("an attempt still going at the deadline is cut off; close returns then", async () => {
      start(() => new Promise<number>(() => {}));
      dispatcher.send([receiver.url], MESSAGE);
      await waitFor("the attempt to reach the receiver", () => receiver.received.length === 1);
      const started = performance.now();
      await dispatcher.close(200);
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(counts).toEqual({ delivered: 0, retried: 0, failed: 1 });
      expect(logs.at(-1)).toContain('attempts=1 error="cut off at the shutdown deadline"');
      // And after it, nothing more is sent.
      dispatcher.send([receiver.url], MESSAGE);
      expect(counts.failed).toBe(2);
      expect(receiver.received).toHaveLength(1);
    });
  });

  test("past maxPending deliveries under way, a new one fails at once", async () => {
    receiver = startWebhookReceiver(() => new Promise<number>(() => {}));
    const counter = counting();
    counts = counter.counts;
    dispatcher = new WebhookDispatcher({ key: KEY, log: createLogger("off"), observer: counter.observer, maxPending: 2 });
    dispatcher.send([receiver.url, receiver.url, receiver.url], MESSAGE);
    expect(dispatcher.pendingCount).toBe(2);
    expect(counts.failed).toBe(1);
  });
});

describe("runs announce themselves (runWebhooks)", () => {
  let receiver: WebhookReceiver;
  afterEach(async () => {
    await receiver.stop();
  });

  /** A registry whose runs announce themselves to `serverUrl` (and their own webhook_url), as the server wires it. */
  function hooked(script: Parameters<typeof fakeEngine>[0], serverUrl?: string) {
    const dispatcher = new WebhookDispatcher({ key: KEY, log: createLogger("off"), retryDelaysMs: [] });
    const runs = new RunRegistry(fakeEngine(script), createLogger("off"), {
      maxConcurrent: 10,
      turnTimeoutMs: undefined,
      notifier: runWebhooks(dispatcher, serverUrl),
    });
    return { runs, dispatcher };
  }

  test("run.done for a completed turn: the done payload, its id, thread, start and end", async () => {
    receiver = startWebhookReceiver(() => 204);
    const { runs, dispatcher } = hooked(() => completedTurn("hi", "thread-9"));
    const run = runs.start("run-ok", { input: "hi", workDir: "/tmp", webhookUrl: receiver.url });
    await run.finished;
    await waitFor("the hook", () => dispatcher.pendingCount === 0 && receiver.received.length === 1);
    const hook = runDoneWebhookSchema.strict().parse(receiver.received[0]?.json);
    expect(hook.data).toEqual({
      id: "run-ok",
      status: "completed",
      thread_id: "thread-9",
      request_id: "run-ok",
      usage: expect.any(Object),
      error: null,
      final_response: "hi",
      replaces: null,
      diff: null,
      started_at: run.summary().started_at,
      finished_at: run.summary().finished_at as string,
    });
  });

  test("run.done however the run ends (cancelled here), to the server's URL and the run's own, once each", async () => {
    receiver = startWebhookReceiver(() => 204);
    const serverHooks = startWebhookReceiver(() => 204);
    try {
      const { runs, dispatcher } = hooked(hangingTurn, serverHooks.url);
      const run = runs.start("run-x", { input: "hi", workDir: "/tmp", webhookUrl: receiver.url });
      await waitFor("the thread", () => run.threadId !== null);
      run.stop("cancelled");
      await waitFor("both hooks", () => dispatcher.pendingCount === 0 && receiver.received.length + serverHooks.received.length === 2);
      for (const hook of [receiver.received[0], serverHooks.received[0]]) {
        expect(runDoneWebhookSchema.parse(hook?.json).data).toMatchObject({ id: "run-x", status: "cancelled", error: "turn cancelled" });
      }
    } finally {
      await serverHooks.stop();
    }
  });

  test("the same URL from the server and the run: one delivery", async () => {
    receiver = startWebhookReceiver(() => 204);
    const { runs, dispatcher } = hooked(() => completedTurn("hi"), receiver.url);
    await runs.start("run-same", { input: "hi", workDir: "/tmp", webhookUrl: receiver.url }).finished;
    await waitFor("the hook", () => dispatcher.pendingCount === 0 && receiver.received.length === 1);
  });

  test("approval.requested: the run, its thread and what codex asks", async () => {
    const script = async function* (request: { signal: AbortSignal }) {
      yield { type: "thread.started", thread_id: "thread-a" } satisfies ThreadEvent;
      yield { type: "approval.requested", approval_id: "ap-1", kind: "command_execution", command: "rm -rf build", cwd: "/w", reason: "why not" } satisfies EngineEvent;
      await new Promise((resolve) => request.signal.addEventListener("abort", resolve, { once: true }));
      throw new Error("The operation was aborted.");
    };
    receiver = startWebhookReceiver(() => 204);
    const { runs, dispatcher } = hooked(script);
    const run = runs.start("run-a", { input: "hi", workDir: "/tmp", webhookUrl: receiver.url });
    await waitFor("the approval hook", () => receiver.received.length === 1);
    expect(approvalRequestedWebhookSchema.strict().parse(receiver.received[0]?.json).data).toEqual({
      run_id: "run-a",
      thread_id: "thread-a",
      approval_id: "ap-1",
      kind: "command_execution",
      command: "rm -rf build",
      cwd: "/w",
      reason: "why not",
    });
    run.stop("cancelled");
    await waitFor("run.done", () => dispatcher.pendingCount === 0 && receiver.received.length === 2);
    expect(receiver.received[1]?.json.type).toBe("run.done");
  });

  test("no URL at all: nothing is sent", async () => {
    receiver = startWebhookReceiver(() => 204);
    const { runs, dispatcher } = hooked(() => completedTurn("hi"));
    await runs.start("run-none", { input: "hi", workDir: "/tmp" }).finished;
    expect(dispatcher.pendingCount).toBe(0);
    expect(receiver.received).toHaveLength(0);
  });
});

describe("webhook_url in POST /messages", () => {
  const turn = (webhookUrl: unknown) => ({ type: "user_message", message: "hi", webhook_url: webhookUrl });

  test.each([
    [["127.0.0.1"], "http://127.0.0.1:9/hooks"],
    [[".example.com"], "https://hooks.example.com/x?token=1"],
    [[".example.com"], "https://example.com./x"],
    [["::1"], "http://[::1]:9/"],
    // URLs name an address in more ways than one; the host compared is the one fetch would use.
    [["127.0.0.1"], "http://2130706433/"],
  ])("allowed hosts %p take %p: the turn runs with it", async (hosts, url) => {
    const engine = fakeEngine(() => completedTurn("hi"));
    const { post, runs } = setup(engine, { webhookAllowedHosts: hosts });
    const res = await post(turn(url));
    expect(res.status).toBe(200);
    expect(parseSse(await res.text()).frames.at(-1)?.event).toBe("done");
    expect(runs.get("generated-id")?.turn.webhookUrl).toBe(url);
  });

  test.each([
    [["hooks.example.com"], "https://evil.example/x", "webhook_url: evil.example is not a host that --webhook-allowed-hosts lists."],
    [["hooks.example.com"], "https://hooks.example.com.evil.example/", "webhook_url: hooks.example.com.evil.example is not a host that --webhook-allowed-hosts lists."],
    [["127.0.0.1"], "http://localhost:9/", "webhook_url: localhost is not a host that --webhook-allowed-hosts lists."],
    [[], "https://hooks.example.com/", "webhook_url: this server takes none; its operator can allow hosts with --webhook-allowed-hosts."],
    [["127.0.0.1"], "file:///etc/passwd", "webhook_url: must be an http:// or https:// URL"],
    [["127.0.0.1"], "not a url", "webhook_url: must be an http:// or https:// URL"],
    [["127.0.0.1"], 42, "webhook_url: Invalid input: expected string, received number"],
  ] as Array<[string[], unknown, string]>)("allowed hosts %p refuse %p: 422, and no turn", async (hosts, url, message) => {
    const engine = fakeEngine(() => completedTurn("hi"));
    const { post } = setup(engine, { webhookAllowedHosts: hosts });
    const res = await post(turn(url));
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({ error: { code: "invalid_request", message } });
    expect(engine.calls).toHaveLength(0);
  });
});
