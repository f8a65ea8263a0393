/**
 * The real server (in this process, on a free port) and the real codex binary, talking to the
 * scripted model on 127.0.0.1. Nothing here leaves the machine.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ENGINES } from "../src/config";
import { appServersUnder, turnProcessesUnder } from "./fixtures/processes";
import { parseSse, readSse, type SseFrame, sseReader } from "./fixtures/sse";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { agentTexts } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

const json = (frame: SseFrame | undefined) => JSON.parse(frame?.data ?? "null");

for (const engine of ENGINES) describe(`${engine} engine`, () => {
  let server: TestServer;
  let workDir: string;

  beforeAll(() => {
    server = startTestServer({ engine });
    workDir = realpathSync(mkdtempSync(join(tmpdir(), "e2e-work-")));
    writeFileSync(join(workDir, "marker-file.txt"), "x");
  });

  afterAll(async () => {
    await server.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  describe("a turn through the real server and codex", () => {
    test("streams the SDK's events and ends with done", async () => {
      const res = await server.send({ type: "user_message", message: "say hello there", id: "full-turn-1" });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/event-stream");
      expect(res.headers.get("cache-control")).toBe("no-cache");
      expect(res.headers.get("x-accel-buffering")).toBe("no");
      expect(res.headers.get("x-request-id")).toBe("full-turn-1");
      const { frames } = await readSse(res);

      const types = frames.map((f) => f.event);
      expect(types[0]).toBe("thread.started");
      expect(types.slice(-2)).toEqual(["turn.completed", "done"]);
      expect(types).toContain("turn.started");
      expect(agentTexts(frames)).toEqual(["hello there"]);

      const threadId = json(frames[0]).thread_id;
      expect(threadId).toMatch(/^[0-9a-f-]{36}$/);
      const usage = json(frames.at(-2)).usage;
      expect(usage).toMatchObject({ input_tokens: 10, output_tokens: 5 });
      expect(json(frames.at(-1))).toEqual({
        status: "completed",
        thread_id: threadId,
        request_id: "full-turn-1",
        usage,
        error: null,
        final_response: "hello there",
        replaces: null,
        diff: null,
      });
      expect(server.model.requests.at(-1)?.prompts).toEqual(["say hello there"]);
    });

    test("SSE framing, byte by byte: event, data (the event JSON unchanged), id from 1", async () => {
      const res = await server.send({ type: "user_message", message: "say framing" });
      const raw = await res.text();
      const { frames, comments } = parseSse(raw);
      expect(comments).toEqual([]);
      const rebuilt = frames.map((f, i) => `event: ${f.event}\ndata: ${f.data}\nid: ${i + 1}\n\n`).join("");
      expect(raw).toBe(rebuilt);
      for (const frame of frames.slice(0, -1)) {
        const event = JSON.parse(frame.data);
        expect(event.type).toBe(frame.event);
        expect(JSON.stringify(event)).toBe(frame.data);
      }
      expect(frames.at(-1)?.event).toBe("done");
    });

    test("work_dir: codex runs a real command there", async () => {
      const res = await server.send({ type: "user_message", message: "run pwd && ls", work_dir: workDir });
      const { frames } = await readSse(res);
      const command = frames.find((f) => f.event === "item.completed" && json(f).item.type === "command_execution");
      expect(json(command).item).toMatchObject({
        type: "command_execution",
        aggregated_output: `${workDir}\nmarker-file.txt\n`,
        exit_code: 0,
        status: "completed",
      });
      expect(agentTexts(frames)).toEqual([`ran: ${workDir}\nmarker-file.txt`]);
      expect(json(frames.at(-1)).status).toBe("completed");
    });

    test("without work_dir the turn runs in the server's directory", async () => {
      const { frames } = await readSse(await server.send({ type: "user_message", message: "run pwd" }));
      expect(agentTexts(frames)).toEqual([`ran: ${process.cwd()}`]);
    });

    test("ten concurrent turns stay isolated", async () => {
      const before = server.model.requests.length;
      const reads = await Promise.all(
        Array.from({ length: 10 }, (_, n) =>
          server.send({ type: "user_message", message: `say token-${n}`, id: `concurrent-${n}` }).then((res) => readSse(res, 90_000)),
        ),
      );
      const threads = new Set<string>();
      reads.forEach(({ frames }, n) => {
        expect(agentTexts(frames)).toEqual([`token-${n}`]);
        const done = json(frames.at(-1));
        expect(done).toMatchObject({ status: "completed", request_id: `concurrent-${n}` });
        expect(json(frames[0]).thread_id).toBe(done.thread_id);
        threads.add(done.thread_id);
      });
      expect(threads.size).toBe(10);
      expect(server.model.requests.length - before).toBe(10);
    }, 120_000);

    test("a model error ends the turn with done status failed and the reason", async () => {
      const { frames } = await readSse(await server.send({ type: "user_message", message: "fail", id: "fails-1" }));
      const types = frames.map((f) => f.event);
      expect(types.slice(-2)).toEqual(["turn.failed", "done"]);
      const reason = json(frames.at(-2)).error.message;
      expect(reason.length).toBeGreaterThan(0);
      expect(json(frames.at(-1))).toMatchObject({ status: "failed", request_id: "fails-1", usage: null, error: reason });
    });

    test("a model stream cut short ends with done status failed", async () => {
      const { frames } = await readSse(await server.send({ type: "user_message", message: "cut" }));
      expect(frames.map((f) => f.event).slice(-2)).toEqual(["turn.failed", "done"]);
      expect(json(frames.at(-1)).status).toBe("failed");
    });

    test("bypass on: the model is told the sandbox is danger-full-access", async () => {
      const { frames } = await readSse(await server.send({ type: "user_message", message: "sandbox" }));
      expect(agentTexts(frames)).toEqual(["danger-full-access"]);
    });

    test("a client that disconnects stops the turn within 1 s and leaves no turn process behind", async () => {
      const controller = new AbortController();
      const requestsBefore = server.model.requests.length;
      const abandonedBefore = server.model.abandoned;
      const appServers = appServersUnder(process.pid);
      const res = await server.send({ type: "user_message", message: "sleep 60000 never", id: "disconnects" }, { signal: controller.signal });
      await sseReader(res).until((f) => f.event === "turn.started");
      await waitFor("the model to be asked", () => server.model.requests.length > requestsBefore);
      expect(turnProcessesUnder(process.pid)).toHaveLength(engine === "exec" ? 1 : 0);
      controller.abort();
      const abortedAt = performance.now();
      await waitFor("codex to drop the model request", () => server.model.abandoned > abandonedBefore, 1_000);
      await waitFor("no turn process", () => turnProcessesUnder(process.pid).length === 0, 1_000);
      expect(performance.now() - abortedAt).toBeLessThan(1_000);
      // app-server interrupts the turn and stays up for the next ones.
      expect(appServersUnder(process.pid)).toEqual(appServers);
      await waitFor("the run to be released", () => server.running.runs.size === 0, 2_000);
      expect(server.logs.some((l) => / turn finished request_id=disconnects .*status=cancelled/.test(l))).toBe(true);
    });

    test("a turn that stays quiet for 16 s keeps its stream, with heartbeats", async () => {
      const res = await server.send({ type: "user_message", message: "sleep 16000 still here" });
      const { frames, comments } = await readSse(res, 60_000);
      expect(comments).toEqual([": keep-alive"]);
      expect(agentTexts(frames)).toEqual(["still here"]);
      expect(json(frames.at(-1)).status).toBe("completed");
    }, 60_000);
  });

  describe("bad input never reaches the model", () => {
    const bad: Array<[string, RequestInit & { path?: string }, number]> = [
      ["malformed JSON", { body: "{nope", headers: { "content-type": "application/json" } }, 400],
      ["form data", { body: "type=user_message&message=hi", headers: { "content-type": "application/x-www-form-urlencoded" } }, 415],
      ["missing message", { body: '{"type":"user_message"}', headers: { "content-type": "application/json" } }, 422],
      ["relative work_dir", { body: '{"type":"user_message","message":"run id","work_dir":"tmp"}', headers: { "content-type": "application/json" } }, 422],
      ["work_dir that does not exist", { body: '{"type":"user_message","message":"run id","work_dir":"/nope/x"}', headers: { "content-type": "application/json" } }, 422],
      ["header injection in id", { body: '{"type":"user_message","message":"hi","id":"x\\r\\nset-cookie: a"}', headers: { "content-type": "application/json" } }, 422],
      ["unknown type", { body: '{"type":"exec","message":"rm -rf /"}', headers: { "content-type": "application/json" } }, 422],
      ["user_edit of nothing", { body: '{"type":"user_edit","id":"x","message":"y"}', headers: { "content-type": "application/json" } }, 404],
      ["user_confirm", { body: '{"type":"user_confirm","id":"x","approval_id":"a","decision":"approve"}', headers: { "content-type": "application/json" } }, 409],
      ["resuming an unknown thread", { body: '{"type":"user_message","message":"count","thread_id":"01a213a3-0000-0000-0000-000000000000"}', headers: { "content-type": "application/json" } }, 404],
      ["user_cancel of nothing", { body: '{"type":"user_cancel","id":"x"}', headers: { "content-type": "application/json" } }, 404],
      ["body over 1 MiB", { body: JSON.stringify({ type: "user_message", message: "x".repeat(1024 * 1024) }), headers: { "content-type": "application/json" } }, 413],
      ["GET /messages", { method: "GET" }, 405],
      ["unknown path", { path: "/message" }, 404],
    ];

    for (const [name, init, status] of bad) test(`${name} -> ${status}`, async () => {
      // An earlier turn's codex may still be exiting after its done.
      await waitFor("earlier turns' codex to exit", () => turnProcessesUnder(process.pid).length === 0);
      const requestsBefore = server.model.requests.length;
      const res = await fetch(`${server.url}${init.path ?? "/messages"}`, { method: "POST", ...init });
      expect(res.status).toBe(status);
      expect(res.headers.get("content-type")).toBe("application/json");
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(Object.keys(body)).toEqual(["error"]);
      expect(body.error.code).toMatch(/^[a-z_]+$/);
      expect(body.error.message.length).toBeGreaterThan(0);
      expect(server.model.requests.length).toBe(requestsBefore);
      expect(turnProcessesUnder(process.pid)).toEqual([]);
    });
  });

  describe("bypass off", () => {
    let safe: TestServer;
    beforeAll(() => {
      safe = startTestServer({ engine, bypassApprovalsAndSandbox: false });
    });
    afterAll(() => safe.close());

    test("the model sees codex's own sandbox, not full access", async () => {
      const { frames } = await readSse(await safe.send({ type: "user_message", message: "sandbox" }));
      expect(agentTexts(frames)).toEqual(["read-only"]);
    });

    test("and a command cannot write to the work_dir", async () => {
      const { frames } = await readSse(await safe.send({ type: "user_message", message: "run touch written.txt", work_dir: workDir }));
      const [answer] = agentTexts(frames);
      expect(answer).toStartWith("ran: ");
      expect(answer).toContain("touch: cannot touch 'written.txt': Read-only file system");
      expect(await Bun.file(join(workDir, "written.txt")).exists()).toBe(false);
    });
  });

  describe("authentication errors reach the client", () => {
    test("a rejected API key: done status failed, saying the credentials were refused and what to do, then the model's 401", async () => {
      const { frames } = await readSse(await server.send({ type: "user_message", message: "unauthorized" }));
      expect(frames.map((f) => f.event).slice(-3)).toEqual(["error", "turn.failed", "done"]);
      const failed = json(frames.at(-2)).error.message;
      expect(failed).toStartWith("unexpected status 401 Unauthorized: Incorrect API key provided.");
      expect(json(frames.at(-1))).toMatchObject({
        status: "failed",
        error: `the model provider refused codex's credentials (401): run \`codex login\` with the server's CODEX_HOME, or set OPENAI_API_KEY; codex said: ${failed}`,
      });
    });

    test("with the provider's key set, /ready says ready", async () => {
      const res = await fetch(`${server.url}/ready`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ready", codex_login: "ok" });
    });

    test("no API key in codex's environment: done status failed, naming the variable; /ready says codex cannot authenticate", async () => {
      const keyless = startTestServer({ engine }, { apiKey: false });
      try {
        const { frames } = await readSse(await keyless.send({ type: "user_message", message: "say hi" }));
        expect(json(frames.at(-2)).error.message).toBe("Missing environment variable: `MOCK_API_KEY`.");
        expect(json(frames.at(-1))).toMatchObject({
          status: "failed",
          error: "codex has no credentials for its model provider: set the variable in the server's environment; codex said: Missing environment variable: `MOCK_API_KEY`.",
        });
        expect(keyless.model.requests).toHaveLength(0);
        const ready = await fetch(`${keyless.url}/ready`);
        expect(ready.status).toBe(503);
        expect(await ready.json()).toEqual({ status: "not_ready", codex_login: "missing" });
        expect(keyless.logs.filter((line) => line.includes("cannot authenticate"))).toEqual([
          expect.stringMatching(/ WARN {2}codex cannot authenticate: model provider "mock" takes its key from MOCK_API_KEY, which is not set in the server's environment: set it\n$/),
        ]);
      } finally {
        await keyless.close();
      }
    });
  });
});
