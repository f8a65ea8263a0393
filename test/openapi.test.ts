import { describe, expect, test } from "bun:test";
import { validate } from "@readme/openapi-parser";
import { createMetrics } from "../src/metrics";
import { openApiDocument } from "../src/openapi";
import {
  cancelledSchema,
  doneSchema,
  errorSchema,
  healthSchema,
  readySchema,
  runListSchema,
  runQueuedEventSchema,
  runSummarySchema,
  threadArchivedSchema,
  threadDetailSchema,
  threadForkedSchema,
  threadListSchema,
  threadSummarySchema,
  threadTurnSchema,
} from "../src/schemas";
import { setup } from "./fixtures/app-setup";
import type { ThreadEvent } from "../src/engine/types";
import { completedTurn, fakeEngine, fakeThreadStore, hangingTurn, USAGE } from "./fixtures/fake-engine";
import { parseSse } from "./fixtures/sse";

describe("GET /openapi.json", () => {
  test("describes every route, open without the token", async () => {
    const res = await setup(fakeEngine(() => completedTurn("hi")), { authToken: "t" }).app.request("/openapi.json");
    expect(res.status).toBe(200);
    type Variant = { properties: Record<string, unknown> & { type: { const: string } } };
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown>; components: { schemas: { MessageRequest: { oneOf: Variant[] } } } };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(["/", "/health", "/ready", "/messages", "/runs", "/runs/{id}", "/runs/{id}/events", "/openapi.json"]);
    const variants = doc.components.schemas.MessageRequest.oneOf;
    expect(variants.map((variant) => variant.properties.type.const)).toEqual([
      "user_message",
      "user_cancel",
      "user_edit",
      "user_confirm",
    ]);
    expect(Object.keys(variants[0]?.properties ?? {})).toEqual([
      "type", "message", "work_dir", "id", "thread_id", "model", "reasoning_effort", "sandbox", "output_schema", "images", "on_busy", "webhook_url",
    ]);
  });
});

/** Metrics whose gauges all read 0. */
const idleMetrics = () => createMetrics({ activeTurns: () => 0, queuedTurns: () => 0, activeCodexProcesses: () => 0, retainedRuns: () => 0, retainedRunBytes: () => 0, pendingWebhookDeliveries: () => 0 });

test("/ only with the console on, /metrics only where there are metrics", async () => {
  const metrics = idleMetrics();
  const paths = async (app: ReturnType<typeof setup>["app"]) =>
    Object.keys(((await (await app.request("/openapi.json")).json()) as { paths: object }).paths);
  expect(await paths(setup(fakeEngine(() => completedTurn("hi")), {}, 1, { metrics }).app)).toEqual([
    "/", "/health", "/ready", "/messages", "/runs", "/runs/{id}", "/runs/{id}/events", "/openapi.json", "/metrics",
  ]);
  expect(await paths(setup(fakeEngine(() => completedTurn("hi")), { webConsole: false }, 1, { metrics }).app)).toEqual([
    "/health", "/ready", "/messages", "/runs", "/runs/{id}", "/runs/{id}/events", "/openapi.json", "/metrics",
  ]);
});

test("validates as OpenAPI 3.1 with a maintained validator, which does reject a broken copy", async () => {
  for (const webConsole of [true, false]) {
    for (const metrics of [true, false]) {
      for (const threads of [true, false]) {
        const document = openApiDocument({ webConsole, metrics, threads });
        expect(await validate(structuredClone(document) as never)).toEqual({ valid: true, warnings: [], specification: "OpenAPI" });
      }
    }
  }
  const broken = structuredClone(openApiDocument({ webConsole: true, metrics: true, threads: true })) as Partial<ReturnType<typeof openApiDocument>>;
  delete broken.info;
  expect(((await validate(broken as never)) as { valid: boolean }).valid).toBe(false);
});

test("describes the webhooks the server sends, their signature headers and payloads", () => {
  const { webhooks, components } = openApiDocument({ webConsole: false, metrics: false, threads: false });
  expect(Object.keys(webhooks)).toEqual(["run.done", "approval.requested"]);
  expect(webhooks["run.done"].post.parameters.map((header) => header.name)).toEqual(["webhook-id", "webhook-timestamp", "webhook-signature"]);
  expect(webhooks["run.done"].post.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/RunDoneWebhook");
  expect(Object.keys(components.schemas)).toContain("ApprovalRequestedWebhook");
});

test("/threads and its schemas only where the engine has a thread store", async () => {
  const { app } = setup(fakeEngine(() => completedTurn("hi"), fakeThreadStore([])));
  const doc = (await (await app.request("/openapi.json")).json()) as { paths: object; components: { schemas: object } };
  expect(Object.keys(doc.paths)).toEqual([
    "/", "/health", "/ready", "/messages", "/runs", "/runs/{id}", "/runs/{id}/events", "/openapi.json", "/threads", "/threads/{id}", "/threads/{id}/fork",
  ]);
  expect(Object.keys(doc.components.schemas).filter((name) => name.startsWith("Thread"))).toEqual([
    "ThreadSummary", "ThreadList", "ThreadDetail", "ThreadRename", "ThreadFork", "ThreadArchived", "ThreadForked",
  ]);
});

describe("what the server answers matches the document, field for field", () => {
  test("the thread list, a thread, a rename, an archive and a fork", async () => {
    const thread = { id: "01a213ec-28be-7ba3-89bc-98f1fe7e9e8e", name: null, preview: "hi", cwd: "/w", createdAt: 1, updatedAt: 2 };
    const turn = { id: "t", input: "hi", items: [{ id: "item_0", type: "agent_message" as const, text: "hi" }], status: "completed" as const, usage: USAGE, startedAt: 1 };
    const { app } = setup(fakeEngine(() => completedTurn("hi"), fakeThreadStore([{ ...thread, turns: [turn] }])));
    const path = `/threads/${thread.id}`;
    const answer = async (url: string, init?: RequestInit) => (await app.request(url, init)).json();
    threadListSchema.strict().parse(await answer("/threads"));
    const detail = threadDetailSchema.strict().parse(await answer(path));
    threadTurnSchema.strict().parse(detail.turns[0]);
    threadSummarySchema.strict().parse(await answer(path, { method: "PATCH", headers: { "content-type": "application/json" }, body: '{"name":"n"}' }));
    threadForkedSchema.strict().parse(await answer(`${path}/fork`, { method: "POST" }));
    threadArchivedSchema.strict().parse(await answer(path, { method: "DELETE" }));
  });

  test("health, a run's done, its summary, the run list, cancel and errors", async () => {
    const { app, post, runs } = setup(fakeEngine(() => completedTurn("hi")));
    expect(healthSchema.strict().parse(await (await app.request("/health")).json())).toEqual({ status: "ok" });
    expect(readySchema.strict().parse(await (await app.request("/ready")).json())).toEqual({ status: "ready", codex_login: "unknown" });

    const frames = parseSse(await (await post({ type: "user_message", message: "hi", id: "doc-1" })).text()).frames;
    doneSchema.strict().parse(JSON.parse(frames.at(-1)?.data ?? "{}"));
    runSummarySchema.strict().parse(await (await app.request("/runs/doc-1")).json());
    const list = runListSchema.strict().parse(await (await app.request("/runs")).json());
    for (const run of list.runs) runSummarySchema.strict().parse(run);

    errorSchema.strict().parse(await (await app.request("/runs/nope")).json());
    expect(runs.size).toBe(0);
  });

  test("/ and /metrics answer with the media types the document names", async () => {
    type Operation = { security?: unknown[]; responses: Record<string, { content?: Record<string, unknown> }> };
    const { app } = setup(fakeEngine(() => completedTurn("hi")), { authToken: "t" }, 1, {
      metrics: idleMetrics(),
    });
    const doc = (await (await app.request("/openapi.json")).json()) as { paths: Record<string, { get: Operation }> };
    const cases: Array<[string, Record<string, string>]> = [
      ["/", {}],
      ["/metrics", { authorization: "Bearer t" }],
    ];
    for (const [path, headers] of cases) {
      const res = await app.request(path, { headers });
      expect(res.status).toBe(200);
      const [mediaType] = Object.keys(doc.paths[path]?.get.responses[200]?.content ?? {});
      expect(res.headers.get("content-type")).toStartWith(`${mediaType};`);
      await res.text();
    }
    // The page is open like /health; the metrics are behind the token like the rest of the API.
    expect(doc.paths["/"]?.get.security).toEqual([]);
    expect(doc.paths["/metrics"]?.get.security).toBeUndefined();
    expect((await app.request("/metrics")).status).toBe(401);
    expect(Object.keys(doc.paths["/metrics"]?.get.responses ?? {})).toContain("401");
  });

  test("a waiting run's summary", async () => {
    const thread = "01a213ec-28be-7ba3-89bc-98f1fe7e9e8e";
    const { app, post, runs } = setup(
      fakeEngine(async function* (request) {
        yield { type: "thread.started", thread_id: thread } satisfies ThreadEvent;
        await new Promise((resolve) => request.signal.addEventListener("abort", resolve, { once: true }));
      }),
    );
    const first = await post({ type: "user_message", message: "hi", id: "doc-3", thread_id: thread });
    const waiting = await post({ type: "user_message", message: "hi", id: "doc-4", thread_id: thread, on_busy: "enqueue" });
    const summary = runSummarySchema.strict().parse(await (await app.request("/runs/doc-4")).json());
    expect(summary).toMatchObject({ status: "queued", queue_position: 1 });
    runs.stopAll("cancelled");
    const [, frames] = await Promise.all([first.text(), waiting.text().then((raw) => parseSse(raw).frames)]);
    expect(runQueuedEventSchema.strict().parse(JSON.parse(frames[0]?.data ?? "{}"))).toEqual({ type: "run.queued", position: 1 });
  });

  test("cancel", async () => {
    const { app, post } = setup(fakeEngine(hangingTurn));
    const stream = await post({ type: "user_message", message: "hi", id: "doc-2" });
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    cancelledSchema.strict().parse(await (await app.request("/runs/doc-2", { method: "DELETE" })).json());
    await reader.cancel();
  });
});
