/** Conversations and runs through the real server and the real codex (scripted model). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSse, type SseFrame, sseReader } from "./fixtures/sse";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { waitFor } from "./fixtures/wait-for";
import { agentTexts, doneOf } from "./fixtures/turns";
import { ENGINES } from "../src/config";

for (const engine of ENGINES) describe(`${engine} engine`, () => {
  let server: TestServer;
  let workDir: string;

  beforeAll(() => {
    server = startTestServer({ engine, reattachGraceMs: 10_000 });
    workDir = realpathSync(mkdtempSync(join(tmpdir(), "runs-e2e-")));
  });

  afterAll(async () => {
    await server.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  async function turn(body: Record<string, unknown>): Promise<SseFrame[]> {
    return (await readSse(await server.send({ type: "user_message", ...body }))).frames;
  }

  describe("threads", () => {
    test("thread_id continues a thread: the model sees both user messages", async () => {
      const first = doneOf(await turn({ message: "say first" }));
      const second = await turn({ message: "count", thread_id: first.thread_id });
      expect(agentTexts(second)).toEqual(["2"]);
      expect(server.model.requests.at(-1)?.prompts).toEqual(["say first", "count"]);
      expect(doneOf(second)).toMatchObject({ status: "completed", thread_id: first.thread_id, final_response: "2" });
    });

    test("thread_id is a whole codex thread id: a suffix is 422, an unknown one 404, and the model is not asked", async () => {
      const thread = doneOf(await turn({ message: "say whole" })).thread_id as string;
      const before = server.model.requests.length;
      for (const suffix of [thread.split("-").at(-1), thread.slice(thread.indexOf("-") + 1), thread.slice(1)]) {
        const res = await server.send({ type: "user_message", message: "count", thread_id: suffix });
        expect(res.status).toBe(422);
        expect(await res.json()).toEqual({
          error: { code: "invalid_request", message: "thread_id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e" },
        });
      }
      const unknown = "01a213ec-28be-7ba3-89bc-000000000000";
      const res = await server.send({ type: "user_message", message: "count", thread_id: unknown });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: { code: "thread_not_found", message: `No codex thread ${unknown} is stored here.` } });
      expect(server.model.requests.length).toBe(before);
      // codex reads a thread id as a UUID, in either case; so does the server.
      const again = await turn({ message: "count", thread_id: thread.toUpperCase() });
      expect(agentTexts(again)).toEqual(["2"]);
      expect(doneOf(again)).toMatchObject({ status: "completed", thread_id: thread });
      expect(server.model.requests.at(-1)?.prompts).toEqual(["say whole", "count"]);
    });

    test("each turn of a thread runs with its own sandbox", async () => {
      const threadId = doneOf(await turn({ message: "sandbox" })).thread_id;
      expect(agentTexts(await turn({ message: "sandbox", thread_id: threadId, sandbox: "read-only" }))).toEqual(["read-only"]);
      expect(agentTexts(await turn({ message: "sandbox", thread_id: threadId }))).toEqual(["danger-full-access"]);
    });

    test("a second turn on a running thread gets 409", async () => {
      const thread = doneOf(await turn({ message: "say start" })).thread_id as string;
      const running = sseReader(await server.send({ type: "user_message", message: "sleep 60000 busy", thread_id: thread, id: "busy-1" }));
      await running.until((f) => f.event === "turn.started");
      const res = await server.send({ type: "user_message", message: "say too", thread_id: thread });
      expect(res.status).toBe(409);
      expect(await res.json()).toEqual({
        error: { code: "thread_busy", message: `thread ${thread} is running turn busy-1; a thread runs one turn at a time` },
      });
      await fetch(`${server.url}/runs/busy-1`, { method: "DELETE" });
      expect(doneOf((await running.rest()).frames).status).toBe("cancelled");
    });
  });

  describe("runs", () => {
    test("reattach after a disconnect: Last-Event-ID gives every event exactly once, then done", async () => {
      const controller = new AbortController();
      const first = sseReader(await server.send({ type: "user_message", message: "sleep 1500 after the gap", id: "reattach-1" }, { signal: controller.signal }));
      const before = await first.until((f) => f.event === "turn.started");
      controller.abort();
      const lastSeen = Number(before.frames.at(-1)?.id);
      const res = await fetch(`${server.url}/runs/reattach-1/events`, { headers: { "last-event-id": String(lastSeen) } });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/event-stream");
      const after = (await readSse(res)).frames;
      const ids = [...before.frames, ...after].map((f) => Number(f.id));
      expect(ids).toEqual(ids.map((_, i) => i + 1));
      expect(after[0]?.id).toBe(String(lastSeen + 1));
      expect(agentTexts(after)).toEqual(["after the gap"]);
      expect(doneOf(after)).toMatchObject({ status: "completed", request_id: "reattach-1" });
    });

    test("a finished run is listed and replays in full, several watchers alike", async () => {
      const frames = await turn({ message: "say listed", id: "listed-1" });
      const summary = (await (await fetch(`${server.url}/runs/listed-1`)).json()) as Record<string, string>;
      expect(summary).toMatchObject({ id: "listed-1", status: "completed", thread_id: doneOf(frames).thread_id, replaces: null });
      expect(Date.parse(summary.finished_at ?? "") >= Date.parse(summary.started_at ?? "")).toBe(true);
      const { runs } = (await (await fetch(`${server.url}/runs`)).json()) as { runs: Array<{ id: string }> };
      expect(runs.map((r) => r.id)).toContain("listed-1");
      const replays = await Promise.all([1, 2].map(async () => (await readSse(await fetch(`${server.url}/runs/listed-1/events`))).frames));
      expect(replays[0]).toEqual(frames);
      expect(replays[1]).toEqual(frames);
      expect((await fetch(`${server.url}/runs/nope/events`)).status).toBe(404);
    });
  });

  describe("the other message types", () => {
    test("user_edit: the running turn is cancelled, the edited one runs on its thread", async () => {
      const original = sseReader(await server.send({ type: "user_message", message: "sleep 60000 first draft", id: "edit-me" }));
      await original.until((f) => f.event === "turn.started");
      const res = await server.send(
        { type: "user_edit", id: "edit-me", message: "say second draft" },
        { headers: { "content-type": "application/json", "x-request-id": "edited-1" } },
      );
      expect(res.status).toBe(200);
      expect(res.headers.get("x-request-id")).toBe("edited-1");
      const edited = (await readSse(res)).frames;
      const old = doneOf((await original.rest()).frames);
      expect(old).toMatchObject({ status: "cancelled", request_id: "edit-me" });
      expect(agentTexts(edited)).toEqual(["second draft"]);
      expect(doneOf(edited)).toMatchObject({ status: "completed", request_id: "edited-1", thread_id: old.thread_id, replaces: "edit-me" });
      expect(server.model.requests.at(-1)?.prompts.at(-1)).toBe("say second draft");
    });

    test("a refused user_edit leaves the old turn running", async () => {
      const before = server.model.requests.length;
      const a = sseReader(await server.send({ type: "user_message", message: "sleep 60000 a", id: "edit-a" }));
      const b = sseReader(await server.send({ type: "user_message", message: "sleep 60000 b", id: "edit-b" }));
      await Promise.all([a.until((f) => f.event === "turn.started"), b.until((f) => f.event === "turn.started")]);
      try {
        // turn.started reaches the client before codex asks the model: wait for both to have asked.
        const requests = before + 2;
        await waitFor("both turns to ask the model", () => server.model.requests.length === requests);
        const res = await server.send(
          { type: "user_edit", id: "edit-a", message: "say never" },
          { headers: { "content-type": "application/json", "x-request-id": "edit-b" } },
        );
        expect(res.status).toBe(409);
        expect(await res.json()).toEqual({ error: { code: "id_in_use", message: "a turn with id edit-b is already running" } });
        expect(((await (await fetch(`${server.url}/runs/edit-a`)).json()) as { status: string }).status).toBe("running");
        expect(server.model.requests.length).toBe(requests);
      } finally {
        for (const id of ["edit-a", "edit-b"]) await fetch(`${server.url}/runs/${id}`, { method: "DELETE" });
      }
      for (const reader of [a, b]) expect(doneOf((await reader.rest()).frames).status).toBe("cancelled");
    });

    test("user_confirm: 409, there is never an approval to answer", async () => {
      const res = await server.send({ type: "user_confirm", id: "x", approval_id: "a", decision: "approve" });
      expect(res.status).toBe(409);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("no_approvals");
    });
  });

  describe("per-request options", () => {
    test("output_schema: codex sends it to the model, and done carries the parsed answer", async () => {
      const schema = { type: "object", properties: { answer: { type: "number" } }, required: ["answer"], additionalProperties: false };
      const frames = await turn({ message: 'say {"answer":42}', output_schema: schema });
      expect(server.model.requests.at(-1)?.outputSchema).toEqual(schema);
      expect(doneOf(frames).final_response).toEqual({ answer: 42 });
    });

    test("an output_schema nested 20,000 deep: 422 before anything starts, the model never asked", async () => {
      const before = server.model.requests.length;
      const deep = '{"type":"user_message","message":"say deep","output_schema":' + '{"a":'.repeat(20_000) + "1" + "}".repeat(20_000) + "}";
      const res = await server.send(deep);
      expect(res.status).toBe(422);
      expect(await res.json()).toEqual({ error: { code: "invalid_request", message: "body: must not nest arrays and objects more than 64 deep" } });
      expect(server.model.requests.length).toBe(before);
      expect(doneOf(await turn({ message: "say still here" })).status).toBe("completed");
    });

    test("images inside the work_dir reach the model; others are refused", async () => {
      const image = join(workDir, "pixel.png");
      writeFileSync(image, Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64"));
      const frames = await turn({ message: "say seen", work_dir: workDir, images: [image] });
      expect(doneOf(frames).status).toBe("completed");
      expect(server.model.requests.at(-1)?.images).toBe(1);
      const before = server.model.requests.length;
      const outside = await server.send({ type: "user_message", message: "say no", work_dir: workDir, images: ["/etc/hostname"] });
      expect(outside.status).toBe(403);
      expect(server.model.requests.length).toBe(before);
    });

    test("model and reasoning_effort reach the model", async () => {
      expect(doneOf(await turn({ message: "say tuned", model: "mock-model-b", reasoning_effort: "low" })).status).toBe("completed");
      expect(server.model.requests.at(-1)).toMatchObject({ model: "mock-model-b", reasoningEffort: "low", prompts: ["say tuned"] });
    });

    test("sandbox read-only tightens a bypassed server: the model sees read-only", async () => {
      expect(agentTexts(await turn({ message: "sandbox", sandbox: "read-only" }))).toEqual(["read-only"]);
      expect(agentTexts(await turn({ message: "sandbox" }))).toEqual(["danger-full-access"]);
    });

    test("sandbox workspace-write cannot loosen a server without bypass", async () => {
      const safe = startTestServer({ engine, bypassApprovalsAndSandbox: false });
      try {
        const res = await safe.send({ type: "user_message", message: "sandbox", sandbox: "workspace-write" });
        expect(res.status).toBe(403);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe("sandbox_forbidden");
        expect(safe.model.requests).toHaveLength(0);
        expect(agentTexts((await readSse(await safe.send({ type: "user_message", message: "sandbox", sandbox: "read-only" }))).frames)).toEqual(["read-only"]);
      } finally {
        await safe.close();
      }
    });
  });

  describe("the sandbox, whatever codex trusts", () => {
    let repo: string;
    let configPath: string;
    beforeAll(() => {
      repo = join(workDir, "repo");
      Bun.spawnSync(["git", "init", "-q", repo]);
      configPath = join(server.home.dir, "config.toml");
    });

    /** A server without bypass on the same CODEX_HOME; started after a turn, so that codex's state database exists. */
    const withoutBypass = () =>
      startTestServer({ engine, bypassApprovalsAndSandbox: false, codexEnv: { ...(process.env as Record<string, string>), ...server.home.env } });
    const sandboxIn = async (on: TestServer) =>
      agentTexts((await readSse(await on.send({ type: "user_message", message: "sandbox", work_dir: repo }))).frames);

    test("a bypass turn in a git repository writes no trust into config.toml; a server without bypass then runs read-only there", async () => {
      const before = readFileSync(configPath, "utf8");
      expect(await sandboxIn(server)).toEqual(["danger-full-access"]);
      expect(readFileSync(configPath, "utf8")).toBe(before);
      const safe = withoutBypass();
      try {
        expect(await sandboxIn(safe)).toEqual(["read-only"]);
        expect(readFileSync(configPath, "utf8")).toBe(before);
      } finally {
        await safe.close();
      }
    }, 30_000);

    test("config.toml trusting the repository does not loosen a server without bypass; config.toml's sandbox_mode does", async () => {
      const before = readFileSync(configPath, "utf8");
      await turn({ message: "say ready" });
      const safe = withoutBypass();
      try {
        writeFileSync(configPath, `${before}\n[projects.${JSON.stringify(repo)}]\ntrust_level = "trusted"\n`);
        expect(await sandboxIn(safe)).toEqual(["read-only"]);
        writeFileSync(configPath, `sandbox_mode = "workspace-write"\n${before}`);
        expect(await sandboxIn(safe)).toEqual(["workspace-write"]);
      } finally {
        writeFileSync(configPath, before);
        await safe.close();
      }
    }, 30_000);
  });
});
