import { describe, expect, test } from "bun:test";
import { EngineBusyError, type ThreadEvent } from "../src/engine/types";
import { setup } from "./fixtures/app-setup";
import { completedTurn, fakeEngine, hangingTurn, heldTurn, USAGE } from "./fixtures/fake-engine";
import { parseSse, sseReader } from "./fixtures/sse";
import { waitFor } from "./fixtures/wait-for";

const echo = () => fakeEngine(() => completedTurn("hello"));

describe("GET /health", () => {
  test("answers ok", async () => {
    const res = await setup(echo()).app.request("/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.text()).toBe('{"status":"ok"}');
  });

  test("HEAD works too, without a body", async () => {
    const res = await setup(echo()).app.request("/health", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });

  test("other methods get 405 with Allow", async () => {
    const res = await setup(echo()).app.request("/health", { method: "DELETE" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
    expect(await res.json()).toEqual({
      error: { code: "method_not_allowed", message: "DELETE is not allowed on /health; use GET or HEAD." },
    });
  });
});

describe("GET /ready", () => {
  const login = (state: "ok" | "missing" | "unknown") => ({ current: async () => ({ state, detail: "the detail stays in the log" }) });

  test.each([
    ["ok", 200, { status: "ready", codex_login: "ok" }],
    ["unknown", 200, { status: "ready", codex_login: "unknown" }],
    ["missing", 503, { status: "not_ready", codex_login: "missing" }],
  ] as const)("codex login %s -> %d %p, without the token", async (state, status, body) => {
    const res = await setup(echo(), { authToken: "t" }, 100, { codexLogin: login(state) }).app.request("/ready");
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual(body);
  });

  test("without a login check: ready, codex_login unknown", async () => {
    const res = await setup(echo()).app.request("/ready");
    expect(await res.json()).toEqual({ status: "ready", codex_login: "unknown" });
  });

  test("while the server shuts down: 503 shutting_down", async () => {
    const { app, runs } = setup(echo(), {}, 100, { codexLogin: login("ok") });
    runs.close();
    const res = await app.request("/ready");
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: "shutting_down", codex_login: "ok" });
  });

  test("HEAD works; other methods get 405 with Allow", async () => {
    const { app } = setup(echo());
    expect((await app.request("/ready", { method: "HEAD" })).status).toBe(200);
    const res = await app.request("/ready", { method: "POST" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
  });
});

describe("request ids and logging", () => {
  test("every response carries x-request-id: a valid incoming one is kept", async () => {
    const { app } = setup(echo());
    expect((await app.request("/health", { headers: { "x-request-id": "abc-123" } })).headers.get("x-request-id")).toBe("abc-123");
    expect((await app.request("/health", { headers: { "x-request-id": "bad id\u0001" } })).headers.get("x-request-id")).toBe(
      "generated-id",
    );
    expect((await app.request("/nowhere")).headers.get("x-request-id")).toBe("generated-id-2");
  });

  test("one log line per request with method, path, status, duration and request id", async () => {
    const { app, logs } = setup(echo());
    await app.request("/health?token=secret", { headers: { "x-request-id": "rid-1" } });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}GET \/health status=200 duration_ms=[\d.]+ request_id=rid-1\n$/);
  });
});

describe("unknown paths and methods", () => {
  test.each([
    ["GET", "/console/missing.js"],
    ["GET", "/messages/extra"],
    ["POST", "/nowhere"],
  ])("%s %s -> 404", async (method, path) => {
    const res = await setup(echo()).app.request(path, { method });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: "not_found", message: `There is no ${path} here.` } });
  });

  test("GET /messages -> 405", async () => {
    const res = await setup(echo()).app.request("/messages");
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
  });
});

describe("POST /messages rejects bad input before codex starts", () => {
  const cases: Array<[string, { body: unknown; headers?: Record<string, string> }, number, string, string]> = [
    ["no content type", { body: "{}", headers: {} }, 415, "unsupported_media_type", "Send the body as JSON with content-type: application/json."],
    ["form data", { body: "type=user_message", headers: { "content-type": "application/x-www-form-urlencoded" } }, 415, "unsupported_media_type", "Send the body as JSON with content-type: application/json."],
    ["text/plain", { body: '{"type":"user_message","message":"hi"}', headers: { "content-type": "text/plain" } }, 415, "unsupported_media_type", "Send the body as JSON with content-type: application/json."],
    ["malformed JSON", { body: '{"type":' }, 400, "invalid_json", "The request body is not valid JSON."],
    ["empty body", { body: "" }, 400, "invalid_json", "The request body is not valid JSON."],
    ["a JSON array", { body: [] }, 422, "invalid_request", "body: must be a JSON object"],
    ["a JSON string", { body: '"hi"' }, 422, "invalid_request", "body: must be a JSON object"],
    ["no type", { body: { message: "hi" } }, 422, "invalid_request", "type: must be one of user_message, user_confirm, user_cancel, user_edit"],
    ["unknown type", { body: { type: "shell", message: "hi" } }, 422, "invalid_request", "type: must be one of user_message, user_confirm, user_cancel, user_edit"],
    ["no message", { body: { type: "user_message" } }, 422, "invalid_request", "message: Invalid input: expected string, received undefined"],
    ["blank message", { body: { type: "user_message", message: " \n" } }, 422, "invalid_request", "message: must not be empty"],
    ["message not a string", { body: { type: "user_message", message: 42 } }, 422, "invalid_request", "message: Invalid input: expected string, received number"],
    ["relative work_dir", { body: { type: "user_message", message: "hi", work_dir: "src" } }, 422, "invalid_request", "work_dir: must be an absolute path"],
    ["missing work_dir", { body: { type: "user_message", message: "hi", work_dir: "/no/such/dir" } }, 422, "invalid_request", "work_dir: must be an existing directory"],
    ["work_dir is a file", { body: { type: "user_message", message: "hi", work_dir: "/etc/hostname" } }, 422, "invalid_request", "work_dir: must be an existing directory"],
    ["id with a newline", { body: { type: "user_message", message: "hi", id: "a\nb" } }, 422, "invalid_request", "id: must be 1 to 128 letters, digits, '.', '_', ':' or '-'"],
    ["id too long", { body: { type: "user_message", message: "hi", id: "x".repeat(129) } }, 422, "invalid_request", "id: must be 1 to 128 letters, digits, '.', '_', ':' or '-'"],
    ["unknown field", { body: { type: "user_message", message: "hi", thread: "t" } }, 422, "invalid_request", "thread: unknown field"],
    ["several problems", { body: { type: "user_message", message: "", work_dir: "x" } }, 422, "invalid_request", "message: must not be empty; work_dir: must be an absolute path"],
    ["user_confirm", { body: { type: "user_confirm", id: "r1", approval_id: "a1", decision: "approve" } }, 409, "no_approvals", "This server runs codex with approval policy never, so there is never an approval to answer. To answer approvals, start it with --engine app-server --dangerously-bypass-approvals-and-sandbox false --approval-policy on-request."],
    // Where codex never asks, a user_confirm gets the explanation whatever fields it has or lacks.
    ["user_confirm without a decision", { body: { type: "user_confirm", id: "r1", approval_id: "a1" } }, 409, "no_approvals", "This server runs codex with approval policy never, so there is never an approval to answer. To answer approvals, start it with --engine app-server --dangerously-bypass-approvals-and-sandbox false --approval-policy on-request."],
    ["user_edit of a run that is not going", { body: { type: "user_edit", id: "r1", message: "x" } }, 404, "run_not_found", "No turn with id r1 is running."],
    ["user_edit without a message", { body: { type: "user_edit", id: "r1" } }, 422, "invalid_request", "message: Invalid input: expected string, received undefined"],
    ["a thread id that is no codex thread id", { body: { type: "user_message", message: "hi", thread_id: "../x" } }, 422, "invalid_request", "thread_id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"],
    ["the last group of a thread id", { body: { type: "user_message", message: "hi", thread_id: "98f1fe7e9e8e" } }, 422, "invalid_request", "thread_id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"],
    ["a thread id without its first group", { body: { type: "user_message", message: "hi", thread_id: "28be-7ba3-89bc-98f1fe7e9e8e" } }, 422, "invalid_request", "thread_id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"],
    ["a thread id with a character more", { body: { type: "user_message", message: "hi", thread_id: "01a213ec-28be-7ba3-89bc-98f1fe7e9e8e0" } }, 422, "invalid_request", "thread_id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"],
    ["a thread id with a glob in it", { body: { type: "user_message", message: "hi", thread_id: "01a213ec-28be-7ba3-89bc-98f1fe7e9e8*" } }, 422, "invalid_request", "thread_id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"],
    ["a thread id in braces", { body: { type: "user_message", message: "hi", thread_id: "{01a213ec-28be-7ba3-89bc-98f1fe7e9e8e}" } }, 422, "invalid_request", "thread_id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"],
    ["a thread id without dashes", { body: { type: "user_message", message: "hi", thread_id: "01a213ec28be7ba389bc98f1fe7e9e8e" } }, 422, "invalid_request", "thread_id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"],
    ["a thread id that is not hex", { body: { type: "user_message", message: "hi", thread_id: "01a213ec-28be-7ba3-89bc-98f1fe7e9e8g" } }, 422, "invalid_request", "thread_id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"],
    ["an unknown reasoning effort", { body: { type: "user_message", message: "hi", reasoning_effort: "max" } }, 422, "invalid_request", 'reasoning_effort: Invalid option: expected one of "minimal"|"low"|"medium"|"high"|"xhigh"'],
    ["a sandbox looser than a request may ask", { body: { type: "user_message", message: "hi", sandbox: "danger-full-access" } }, 422, "invalid_request", 'sandbox: Invalid option: expected one of "read-only"|"workspace-write"'],
    ["an unknown on_busy", { body: { type: "user_message", message: "hi", on_busy: "wait" } }, 422, "invalid_request", 'on_busy: Invalid option: expected one of "reject"|"enqueue"|"interrupt"'],
    ["on_busy on a user_edit", { body: { type: "user_edit", id: "r1", message: "x", on_busy: "enqueue" } }, 422, "invalid_request", "on_busy: unknown field"],
    ["a relative image path", { body: { type: "user_message", message: "hi", images: ["a.png"] } }, 422, "invalid_request", "images.0: must be an absolute path"],
    ["body over the limit", { body: { type: "user_message", message: "x".repeat(2000) } }, 413, "payload_too_large", "The request body is larger than 1024 bytes."],
  ];

  for (const [name, request, status, code, message] of cases) test(`${name} -> ${status} ${code}`, async () => {
    const engine = echo();
    const { post } = setup(engine);
    const res = await post(request.body, request.headers ?? { "content-type": "application/json" });
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({ error: { code, message } });
    expect(engine.calls).toHaveLength(0);
  });

  test("where approvals are asked for, a user_confirm without a decision is 422", async () => {
    const engine = echo();
    const res = await setup(engine, { approvalPolicy: "on-request" }).post({ type: "user_confirm", id: "r1", approval_id: "a1" });
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({ error: { code: "invalid_request", message: 'decision: Invalid option: expected one of "approve"|"deny"' } });
  });

  test("JSON nested past 64 levels -> 422 before it is parsed, and no turn starts", async () => {
    const nest = (depth: number): Record<string, unknown> => (depth === 0 ? { type: "object" } : { items: nest(depth - 1) });
    const engine = echo();
    const { post } = setup(engine, { maxBodyBytes: 1024 * 1024 });
    // The body is level 1 and output_schema level 2: 63 levels of schema reach 64.
    const atLimit = await post({ type: "user_message", message: "hi", output_schema: nest(62) });
    expect(atLimit.status).toBe(200);
    expect(parseSse(await atLimit.text()).frames.at(-1)?.event).toBe("done");
    const deep = '{"type":"user_message","message":"hi","output_schema":' + '{"a":'.repeat(20_000) + "1" + "}".repeat(20_000) + "}";
    for (const body of [{ type: "user_message", message: "hi", output_schema: nest(63) }, deep, `[${"[".repeat(100)}`]) {
      const res = await post(body);
      expect(res.status).toBe(422);
      expect(await res.json()).toEqual({
        error: { code: "invalid_request", message: "body: must not nest arrays and objects more than 64 deep" },
      });
    }
    expect(engine.calls).toHaveLength(1);
    // Brackets inside strings are text, not nesting.
    const bracketed = await post({ type: "user_message", message: "[".repeat(500) });
    expect(bracketed.status).toBe(200);
    await bracketed.text();
  });

  test("a chunked body over the limit is cut off with 413 as well", async () => {
    const engine = echo();
    const { app } = setup(engine);
    const chunk = new TextEncoder().encode(`{"type":"user_message","message":"${"x".repeat(600)}`);
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(chunk);
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = await app.request("/messages", { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
    expect(engine.calls).toHaveLength(0);
  });

  test("application/json with a charset, and +json types, are JSON", async () => {
    for (const type of ["application/json; charset=utf-8", "application/vnd.api+json"]) {
      const res = await setup(echo()).post({ type: "user_message", message: "hi" }, { "content-type": type });
      expect(res.status).toBe(200);
      await res.text();
    }
  });
});

describe("POST /messages streams the turn", () => {
  test("each event is one SSE frame, byte for byte, ending with done", async () => {
    const engine = echo();
    const { post } = setup(engine);
    const res = await post({ type: "user_message", message: "say hello", id: "req-7", work_dir: "/tmp" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    expect(res.headers.get("x-request-id")).toBe("req-7");
    const usage = JSON.stringify(USAGE);
    expect(await res.text()).toBe(
      "event: thread.started\n" +
        'data: {"type":"thread.started","thread_id":"thread-1"}\n' +
        "id: 1\n\n" +
        "event: turn.started\n" +
        'data: {"type":"turn.started"}\n' +
        "id: 2\n\n" +
        "event: item.completed\n" +
        'data: {"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"hello"}}\n' +
        "id: 3\n\n" +
        "event: turn.completed\n" +
        `data: {"type":"turn.completed","usage":${usage}}\n` +
        "id: 4\n\n" +
        "event: done\n" +
        `data: {"status":"completed","thread_id":"thread-1","request_id":"req-7","usage":${usage},"error":null,"final_response":"hello","replaces":null,"diff":null}\n` +
        "id: 5\n\n",
    );
    expect(engine.calls.map(({ input, workDir }) => ({ input, workDir }))).toEqual([{ input: "say hello", workDir: "/tmp" }]);
  });

  test("without work_dir the turn runs in the default directory, with a generated id", async () => {
    const engine = echo();
    const res = await setup(engine).post({ type: "user_message", message: "hi" });
    expect(res.headers.get("x-request-id")).toBe("generated-id");
    const done = parseSse(await res.text()).frames.at(-1);
    expect(JSON.parse(done?.data ?? "")).toMatchObject({ request_id: "generated-id" });
    expect(engine.calls[0]?.workDir).toBe("/default/dir");
  });

  test("an engine that throws still ends the stream with done status error", async () => {
    const engine = fakeEngine(async function* () {
      yield { type: "thread.started", thread_id: "t-9" } satisfies ThreadEvent;
      throw new Error("codex crashed");
    });
    const { frames } = parseSse(await (await setup(engine).post({ type: "user_message", message: "hi", id: "r" })).text());
    expect(frames.map((frame) => frame.event)).toEqual(["thread.started", "done"]);
    expect(JSON.parse(frames[1]?.data ?? "")).toEqual({
      status: "error",
      thread_id: "t-9",
      request_id: "r",
      usage: null,
      error: "codex crashed",
      final_response: null,
      replaces: null,
      diff: null,
    });
  });

  test("a quiet turn gets heartbeat comments", async () => {
    const engine = fakeEngine(async function* () {
      await Bun.sleep(120);
      yield* completedTurn("late");
    });
    const raw = await (await setup(engine, { heartbeatMs: 25 }).post({ type: "user_message", message: "hi" })).text();
    expect(raw.startsWith(": keep-alive\n\n: keep-alive\n\n")).toBe(true);
    const { frames, comments } = parseSse(raw);
    expect(comments.length).toBeGreaterThanOrEqual(2);
    expect(new Set(comments)).toEqual(new Set([": keep-alive"]));
    expect(frames.at(-1)?.event).toBe("done");
  });

  test("a client that goes away aborts the turn and frees its id", async () => {
    const engine = fakeEngine(hangingTurn);
    const { post, runs, logs } = setup(engine);
    const res = await post({ type: "user_message", message: "hi", id: "gone" });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    expect(runs.size).toBe(1);
    await reader.cancel();
    await waitFor("the run to end", () => runs.size === 0, 2_000);
    expect(engine.calls[0]?.signal.aborted).toBe(true);
    expect(logs.some((line) => /turn finished request_id=gone thread_id=thread-hang status=cancelled/.test(line))).toBe(true);
  });

  test("an id that is already running gets 409", async () => {
    const engine = fakeEngine(hangingTurn);
    const { post, runs } = setup(engine);
    const first = await post({ type: "user_message", message: "hi", id: "same" });
    const second = await post({ type: "user_message", message: "hi", id: "same" });
    expect(second.status).toBe(409);
    expect(await second.json()).toEqual({ error: { code: "id_in_use", message: "a turn with id same is already running" } });
    runs.stopAll("cancelled");
    const done = parseSse(await first.text()).frames.at(-1);
    expect(JSON.parse(done?.data ?? "").status).toBe("cancelled");
    expect(engine.calls).toHaveLength(1);
  });

  test("a thread id in capitals names the same thread: its running turn makes it busy", async () => {
    const thread = "01a213ec-28be-7ba3-89bc-98f1fe7e9e8e";
    const engine = fakeEngine(async function* (request) {
      if (request.threadId) return yield* completedTurn("continued", request.threadId);
      yield { type: "thread.started", thread_id: thread } satisfies ThreadEvent;
      await new Promise<void>((resolve) => request.signal.addEventListener("abort", () => resolve(), { once: true }));
    });
    const { post, runs } = setup(engine);
    const first = sseReader(await post({ type: "user_message", message: "hi", id: "first" }));
    await first.until((f) => f.event === "thread.started");
    const res = await post({ type: "user_message", message: "hi", thread_id: thread.toUpperCase() });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({
      error: { code: "thread_busy", message: `thread ${thread} is running turn first; a thread runs one turn at a time` },
    });
    runs.stopAll("cancelled");
    await first.rest();
    const again = await post({ type: "user_message", message: "hi", thread_id: thread.toUpperCase(), id: "again" });
    expect(JSON.parse(parseSse(await again.text()).frames.at(-1)?.data ?? "")).toMatchObject({ thread_id: thread, status: "completed" });
    expect(engine.calls.map((call) => call.threadId)).toEqual([undefined, thread]);
  });

  test("once shutdown began, a new turn gets 503 and never starts", async () => {
    const engine = echo();
    const { post, runs } = setup(engine);
    runs.close();
    const res = await post({ type: "user_message", message: "hi" });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect(await res.json()).toEqual({
      error: { code: "shutting_down", message: "the server is shutting down and starts no new turns" },
    });
    expect(engine.calls).toHaveLength(0);
  });

  test("an engine too busy to take the turn: 503 with retry-after, and the turn never existed", async () => {
    let busy = true;
    const engine = Object.assign(
      fakeEngine(async function* () {
        if (busy) throw new EngineBusyError("codex app-server is overloaded: Server overloaded; retry later.", 5);
        yield* completedTurn("room again");
      }),
      { refusesWhenBusy: true },
    );
    const { app, post } = setup(engine);
    const res = await post({ type: "user_message", message: "hi", id: "busy-1" });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect(await res.json()).toEqual({
      error: { code: "engine_busy", message: "codex app-server is overloaded: Server overloaded; retry later." },
    });
    expect((await app.request("/runs/busy-1")).status).toBe(404);
    busy = false;
    const again = parseSse(await (await post({ type: "user_message", message: "hi", id: "busy-1" })).text()).frames;
    expect(JSON.parse(again.at(-1)?.data ?? "").status).toBe("completed");
  });

  test("a client already watching a refused turn by its id sees it end with done, status error", async () => {
    let refuse!: () => void;
    const refusing = new Promise<void>((resolve) => {
      refuse = resolve;
    });
    const engine = Object.assign(
      fakeEngine(async function* () {
        await refusing;
        throw new EngineBusyError("codex app-server is overloaded: Server overloaded; retry later.", 5);
      }),
      { refusesWhenBusy: true },
    );
    const { app, post } = setup(engine);
    const answer = post({ type: "user_message", message: "hi", id: "busy-2" });
    const watching = await waitFor("the run", async () => {
      const res = await app.request("/runs/busy-2/events");
      return res.status === 200 ? res : undefined;
    });
    refuse();
    expect((await answer).status).toBe(503);
    const frames = parseSse(await watching.text()).frames;
    expect(frames.map((f) => f.event)).toEqual(["done"]);
    expect(JSON.parse(frames[0]?.data ?? "")).toMatchObject({
      status: "error",
      request_id: "busy-2",
      error: "codex app-server is overloaded: Server overloaded; retry later.",
    });
  });

  test("concurrent turns never see each other's events", async () => {
    const engine = fakeEngine(async function* (request) {
      for (let i = 0; i < 5; i++) {
        await Bun.sleep(1);
        yield { type: "item.completed", item: { id: `i${i}`, type: "agent_message", text: request.input } } satisfies ThreadEvent;
      }
      yield { type: "turn.completed", usage: USAGE } satisfies ThreadEvent;
    });
    const { post } = setup(engine);
    const bodies = await Promise.all(
      Array.from({ length: 8 }, (_, n) => post({ type: "user_message", message: `m${n}`, id: `c${n}` }).then((res) => res.text())),
    );
    bodies.forEach((raw, n) => {
      const { frames } = parseSse(raw);
      expect(frames.map((frame) => frame.id)).toEqual(["1", "2", "3", "4", "5", "6", "7"]);
      for (const frame of frames.slice(0, 5)) expect(JSON.parse(frame.data).item.text).toBe(`m${n}`);
      expect(JSON.parse(frames[6]?.data ?? "").request_id).toBe(`c${n}`);
    });
  });
});

describe("GET /runs/{id}/events with Last-Event-ID", () => {
  for (const header of ["1e1", "0x3", "99999999999999999999", "-1", "1.5", "", "three"]) {
    test(`${JSON.stringify(header)} -> 400 invalid_last_event_id`, async () => {
      const { app, post } = setup(echo());
      await (await post({ type: "user_message", message: "hi", id: "r1" })).text();
      const res = await app.request("/runs/r1/events", { headers: { "last-event-id": header } });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({
        error: { code: "invalid_last_event_id", message: "Last-Event-ID must be the id of an event: a decimal integer." },
      });
    });
  }

  test("a finished run replayed after an id past its end: exactly one done", async () => {
    const { app, post } = setup(echo());
    const frames = parseSse(await (await post({ type: "user_message", message: "hi", id: "r1" })).text()).frames;
    const done = frames.at(-1);
    expect(done?.id).toBe("5");
    for (const header of ["3", "4", "5", "6", " 1000 ", "9007199254740991"]) {
      const replay = parseSse(await (await app.request("/runs/r1/events", { headers: { "last-event-id": header } })).text()).frames;
      expect(replay).toEqual(frames.slice(Math.min(Number(header), 4)));
      expect(replay.filter((f) => f.event === "done")).toEqual([done as (typeof frames)[number]]);
    }
  });

  test("a running run watched after an id past its end still gets its done when it ends", async () => {
    const { turn, release } = heldTurn("t-1");
    const { app, post } = setup(fakeEngine(turn), { heartbeatMs: 5 });
    const first = sseReader(await post({ type: "user_message", message: "hi", id: "r1" }));
    await first.until((f) => f.event === "thread.started");
    const ahead = sseReader(await app.request("/runs/r1/events", { headers: { "last-event-id": "50" } }));
    // A heartbeat shows that the stream is being read, so it watches the run before it ends.
    await ahead.untilComment();
    release();
    const frames = (await ahead.rest()).frames;
    expect(frames.map((f) => [f.id, f.event])).toEqual([
      ["2", "thread.started"],
      ["3", "turn.started"],
      ["4", "item.completed"],
      ["5", "turn.completed"],
      ["6", "done"],
    ]);
    expect((await first.rest()).frames.at(-1)).toEqual(frames.at(-1) as (typeof frames)[number]);
  });
});

describe("user_edit", () => {
  const edit = (post: ReturnType<typeof setup>["post"], id: string, newId: string) =>
    post({ type: "user_edit", id, message: "edited" }, { "content-type": "application/json", "x-request-id": newId });

  test("a refused edit leaves the old turn running: the new id in use, then shutting down", async () => {
    const engine = fakeEngine(hangingTurn);
    const { post, runs } = setup(engine);
    const a = sseReader(await post({ type: "user_message", message: "a", id: "job-A" }));
    const b = sseReader(await post({ type: "user_message", message: "b", id: "job-B" }));
    await Promise.all([a.until((f) => f.event === "thread.started"), b.until((f) => f.event === "thread.started")]);

    const inUse = await edit(post, "job-A", "job-B");
    expect(inUse.status).toBe(409);
    expect(await inUse.json()).toEqual({ error: { code: "id_in_use", message: "a turn with id job-B is already running" } });
    expect(runs.get("job-A")?.running).toBe(true);
    expect(engine.calls[0]?.signal.aborted).toBe(false);

    runs.close();
    const closing = await edit(post, "job-A", "job-C");
    expect(closing.status).toBe(503);
    expect(await closing.json()).toEqual({ error: { code: "shutting_down", message: "the server is shutting down and starts no new turns" } });
    expect(runs.get("job-A")?.running).toBe(true);
    expect(engine.calls[0]?.signal.aborted).toBe(false);
    expect(engine.calls).toHaveLength(2);

    runs.stopAll("cancelled");
    for (const reader of [a, b]) expect(JSON.parse((await reader.rest()).frames.at(-1)?.data ?? "").status).toBe("cancelled");
  });

  test("at the limit of running turns, the old turn's slot is the edit's; the edit may keep the old id", async () => {
    const engine = fakeEngine((request) => (request.input === "edited" ? completedTurn("done", request.threadId) : hangingTurn(request)));
    const { post } = setup(engine, {}, 1);
    const old = sseReader(await post({ type: "user_message", message: "a", id: "job-A" }));
    await old.until((f) => f.event === "thread.started");
    const res = await edit(post, "job-A", "job-A");
    expect(res.status).toBe(200);
    const done = JSON.parse(parseSse(await res.text()).frames.at(-1)?.data ?? "");
    expect(done).toMatchObject({ status: "completed", request_id: "job-A", replaces: "job-A", thread_id: "thread-hang" });
    expect(JSON.parse((await old.rest()).frames.at(-1)?.data ?? "").status).toBe("cancelled");
    expect(engine.calls.map((call) => [call.input, call.threadId])).toEqual([["a", undefined], ["edited", "thread-hang"]]);
  });

  test("while the old turn ends, the edit's id is held for it", async () => {
    let letEnd!: () => void;
    const ending = new Promise<void>((resolve) => (letEnd = resolve));
    const engine = fakeEngine(async function* (request) {
      if (request.input === "edited") return yield* completedTurn("done");
      yield { type: "thread.started", thread_id: "thread-slow" } satisfies ThreadEvent;
      await new Promise<void>((resolve) => request.signal.addEventListener("abort", () => resolve(), { once: true }));
      // Like an app-server turn after turn/interrupt: it ends a while after the stop.
      await ending;
    });
    const { post, runs } = setup(engine);
    const old = sseReader(await post({ type: "user_message", message: "a", id: "job-A" }));
    await old.until((f) => f.event === "thread.started");
    const edited = edit(post, "job-A", "job-N");
    await waitFor("the old turn to be stopped", () => engine.calls[0]?.signal.aborted);
    const taken = await post({ type: "user_message", message: "b", id: "job-N" });
    expect(taken.status).toBe(409);
    expect(await taken.json()).toEqual({ error: { code: "id_in_use", message: "a turn with id job-N is already running" } });
    expect(runs.get("job-A")?.running).toBe(true);
    letEnd();
    const res = await edited;
    expect(res.status).toBe(200);
    expect(JSON.parse(parseSse(await res.text()).frames.at(-1)?.data ?? "")).toMatchObject({
      status: "completed",
      request_id: "job-N",
      replaces: "job-A",
    });
    expect(JSON.parse((await old.rest()).frames.at(-1)?.data ?? "").status).toBe("cancelled");
    expect(engine.calls.map((call) => call.input)).toEqual(["a", "edited"]);
  });
});
