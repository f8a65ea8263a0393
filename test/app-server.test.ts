/**
 * What only the app-server engine does, end to end with the real codex: threads that move between
 * processes (and engines), and approvals answered over HTTP.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AppServerEngineOptions, createAppServerEngine } from "../src/engine/app-server/engine";
import { locateCodex } from "../src/engine/codex-binary";
import { type Engine, EngineBusyError, EngineError } from "../src/engine/types";
import { createLogger } from "../src/log";
import { ListenError, startServer } from "../src/server";
import { confirmedSchema } from "../src/schemas";
import { fakeCodex } from "./fixtures/fake-app-server";
import { LEAN_OVERRIDES } from "./fixtures/lean-overrides";
import { appServersUnder, descendants, isConnectedTo } from "./fixtures/processes";
import { readSse, type SseFrame, sseReader } from "./fixtures/sse";
import { startTestServer, type TestServer, testConfig } from "./fixtures/test-server";
import { agentTexts, doneOf } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

const json = (frame: SseFrame | undefined) => JSON.parse(frame?.data ?? "null");

describe("threads across processes", () => {
  test("a thread started by the exec engine continues on app-server, which loads it with thread/resume", async () => {
    const exec = startTestServer({ engine: "exec" });
    const first = (await readSse(await exec.send({ type: "user_message", message: "say first" }))).frames;
    const threadId = doneOf(first).thread_id;
    // Started after exec's turn: codex run twice at once on a fresh CODEX_HOME races to create its state database.
    const appServer = startTestServer({ engine: "app-server", codexEnv: { ...(process.env as Record<string, string>), ...exec.home.env } });
    try {
      const res = await appServer.send({ type: "user_message", message: "count", thread_id: threadId });
      if (res.headers.get("content-type") !== "text/event-stream") throw new Error(`no stream: ${res.status} ${await res.text()}`);
      const second = (await readSse(res)).frames;
      expect(doneOf(second)).toMatchObject({ status: "completed", thread_id: threadId, error: null });
      expect(agentTexts(second)).toEqual(["2"]);
      expect(exec.model.requests.at(-1)?.prompts).toEqual(["say first", "count"]);
    } finally {
      await appServer.close();
      await exec.close();
    }
  }, 30_000);

  test("a thread whose app-server died is resumed by the process that replaced it", async () => {
    const server = startTestServer({ engine: "app-server" });
    try {
      const threadId = doneOf((await readSse(await server.send({ type: "user_message", message: "say before" }))).frames).thread_id;
      const [old] = await waitFor("the app-server", () => {
        const found = appServersUnder(process.pid);
        return found.length === 1 ? found : undefined;
      });
      process.kill(old as number, "SIGKILL");
      await waitFor("a new app-server", () => {
        const found = appServersUnder(process.pid);
        return found.length === 1 && found[0] !== old;
      });
      const after = (await readSse(await server.send({ type: "user_message", message: "count", thread_id: threadId }))).frames;
      expect(agentTexts(after)).toEqual(["2"]);
      expect(server.model.requests.at(-1)?.prompts).toEqual(["say before", "count"]);
    } finally {
      await server.close();
    }
  }, 30_000);
});

describe("a codex binary removed after start", () => {
  test("the running app-server goes on serving turns; a restart then fails with a clear error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "codex-link-"));
    const link = join(dir, "codex");
    symlinkSync(locateCodex({ explicitPath: undefined, pathEnv: "", executableDir: dir }).path, link);
    const server = startTestServer({ engine: "app-server", codexPath: link });
    try {
      await waitFor("the app-server", () => appServersUnder(process.pid).length === 1);
      rmSync(link);
      const { frames } = await readSse(await server.send({ type: "user_message", message: "say still served" }));
      expect(agentTexts(frames)).toEqual(["still served"]);
      for (const pid of appServersUnder(process.pid)) process.kill(pid, "SIGKILL");
      await waitFor("the restart to fail", () => server.logs.some((line) => line.includes(`codex binary ${link} is missing or not executable`)));
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("--app-servers 2", () => {
  test("new threads spread over the processes; a thread's next turn goes to the process that holds it", async () => {
    const server = startTestServer({ engine: "app-server", appServers: 2 });
    const port = server.model.port;
    /** The app-server that is asking the model right now, once exactly one is. */
    const asking = () =>
      waitFor("an app-server asking the model", () => {
        const found = appServersUnder(process.pid).filter((pid) => isConnectedTo(pid, port));
        return found.length === 1 ? found[0] : undefined;
      });
    const sleeping = async (id: string, threadId?: string) => {
      const stream = sseReader(await server.send({ type: "user_message", message: "sleep 60000 zzz", id, ...(threadId && { thread_id: threadId }) }));
      const threadStarted = await stream.until((f) => f.event === "thread.started");
      return { stream, threadId: json(threadStarted.frames[0]).thread_id as string };
    };
    try {
      await waitFor("two app-servers", () => appServersUnder(process.pid).length === 2);
      // Started together on a fresh CODEX_HOME, one used to die creating codex's state database.
      expect(server.logs.filter((line) => line.includes("codex app-server died"))).toEqual([]);
      const first = await sleeping("spread-1");
      const firstProcess = await asking();
      const second = await sleeping("spread-2");
      await waitFor("both app-servers asking the model", () => appServersUnder(process.pid).every((pid) => isConnectedTo(pid, port)));
      for (const id of ["spread-1", "spread-2"]) await fetch(`${server.url}/runs/${id}`, { method: "DELETE" });
      for (const { stream } of [first, second]) expect(doneOf((await stream.rest()).frames).status).toBe("cancelled");
      await waitFor("no app-server asking the model", () => appServersUnder(process.pid).every((pid) => !isConnectedTo(pid, port)));

      for (let round = 0; round < 2; round++) {
        const again = await sleeping(`affinity-${round}`, first.threadId);
        expect(await asking()).toBe(firstProcess as number);
        await fetch(`${server.url}/runs/affinity-${round}`, { method: "DELETE" });
        expect(doneOf((await again.stream.rest()).frames).status).toBe("cancelled");
        await waitFor("no app-server asking the model", () => appServersUnder(process.pid).every((pid) => !isConnectedTo(pid, port)));
      }
    } finally {
      await server.close();
    }
  }, 30_000);
});

describe("approvals (--approval-policy on-request, bypass off)", () => {
  let server: TestServer;
  let workDir: string;
  /** Outside every directory codex's sandbox lets a command write (the work_dir, /tmp, $TMPDIR). */
  let outside: string;

  beforeAll(() => {
    server = startTestServer({ engine: "app-server", bypassApprovalsAndSandbox: false, approvalPolicy: "on-request", approvalTimeoutMs: 1_500 });
    workDir = realpathSync(mkdtempSync(join(tmpdir(), "approvals-")));
    outside = mkdtempSync("/var/tmp/codex-approvals-");
  });

  afterAll(async () => {
    await server.close();
    rmSync(workDir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  /** Starts a turn whose command asks to run outside the sandbox, and reads up to its approval request. */
  async function askToWrite(id: string, file: string) {
    const stream = sseReader(
      await server.send({ type: "user_message", message: `escalate touch ${file} && echo wrote`, work_dir: workDir, id }),
    );
    const before = await stream.until((f) => f.event === "approval.requested");
    const requested = json(before.frames.at(-1));
    return { stream, before: before.frames, requested };
  }

  const confirm = (id: string, approvalId: string, decision: string) =>
    server.send({ type: "user_confirm", id, approval_id: approvalId, decision });

  test("without approval, the sandbox refuses to write there", async () => {
    const file = join(outside, "sandboxed.txt");
    const { frames } = await readSse(await server.send({ type: "user_message", message: `run touch ${file}`, work_dir: workDir }));
    expect(agentTexts(frames)[0]).toContain(`touch: cannot touch '${file}': Read-only file system`);
    expect(frames.some((f) => f.event.startsWith("approval."))).toBe(false);
    expect(existsSync(file)).toBe(false);
  });

  test("approve: 200, the stream shows the decision, and the command runs outside the sandbox", async () => {
    const file = join(outside, "approved.txt");
    const { stream, before, requested } = await askToWrite("approve-1", file);
    const command = `/bin/bash -lc 'touch ${file} && echo wrote'`;
    expect(requested).toEqual({
      type: "approval.requested",
      approval_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      kind: "command_execution",
      command,
      cwd: workDir,
      reason: "the test asks to run it outside the sandbox",
    });
    expect(existsSync(file)).toBe(false);

    const res = await confirm("approve-1", requested.approval_id, "approve");
    expect(res.status).toBe(200);
    expect(confirmedSchema.strict().parse(await res.json())).toEqual({ approval_id: requested.approval_id, decision: "approve" });

    const frames = [...before, ...(await stream.rest()).frames.slice(before.length)];
    expect(frames.map((f) => f.event)).toEqual([
      "thread.started",
      "item.completed",
      "turn.started",
      "item.started",
      "approval.requested",
      "approval.resolved",
      "item.completed",
      "item.completed",
      "turn.completed",
      "done",
    ]);
    expect(json(frames[5])).toEqual({ type: "approval.resolved", approval_id: requested.approval_id, decision: "approve", by: "client" });
    expect(json(frames[6]).item).toMatchObject({ type: "command_execution", command, exit_code: 0, status: "completed", aggregated_output: "wrote\n" });
    expect(agentTexts(frames)).toEqual(["ran: wrote"]);
    expect(doneOf(frames).status).toBe("completed");
    expect(existsSync(file)).toBe(true);

    const again = await confirm("approve-1", requested.approval_id, "approve");
    expect(again.status).toBe(404);
  }, 30_000);

  test("deny: the command never runs, and the turn goes on", async () => {
    const file = join(outside, "denied.txt");
    const { stream, before, requested } = await askToWrite("deny-1", file);
    expect((await confirm("deny-1", requested.approval_id, "deny")).status).toBe(200);
    const frames = [...before, ...(await stream.rest()).frames.slice(before.length)];
    const resolved = frames.find((f) => f.event === "approval.resolved");
    expect(json(resolved)).toEqual({ type: "approval.resolved", approval_id: requested.approval_id, decision: "deny", by: "client" });
    const command = frames.find((f) => f.event === "item.completed" && json(f).item.type === "command_execution");
    expect(json(command).item).toMatchObject({ status: "failed", exit_code: null });
    expect(agentTexts(frames)[0]).toContain("rejected by user");
    expect(doneOf(frames).status).toBe("completed");
    expect(existsSync(file)).toBe(false);
  }, 30_000);

  test("unanswered: denied when --approval-timeout passes", async () => {
    const file = join(outside, "timed-out.txt");
    const { stream, before, requested } = await askToWrite("timeout-1", file);
    const frames = [...before, ...(await stream.rest()).frames.slice(before.length)];
    expect(json(frames.find((f) => f.event === "approval.resolved"))).toEqual({
      type: "approval.resolved",
      approval_id: requested.approval_id,
      decision: "deny",
      by: "timeout",
    });
    expect(doneOf(frames).status).toBe("completed");
    expect(existsSync(file)).toBe(false);
    expect((await confirm("timeout-1", requested.approval_id, "approve")).status).toBe(404);
  }, 30_000);

  test("a cancelled turn settles its pending approval", async () => {
    const { stream, before, requested } = await askToWrite("cancel-1", join(outside, "cancelled.txt"));
    expect((await server.send({ type: "user_cancel", id: "cancel-1" })).status).toBe(200);
    const frames = [...before, ...(await stream.rest()).frames.slice(before.length)];
    expect(json(frames.find((f) => f.event === "approval.resolved"))).toEqual({
      type: "approval.resolved",
      approval_id: requested.approval_id,
      decision: "deny",
      by: "turn_ended",
    });
    expect(doneOf(frames).status).toBe("cancelled");
  }, 30_000);

  test("a file change: the request names the files; approved, codex writes them in a read-only sandbox", async () => {
    const patch = "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: approved.txt\n+approved\n*** End Patch\nEOF";
    const stream = sseReader(await server.send({ type: "user_message", message: `run ${patch}`, work_dir: workDir, id: "patch-1" }));
    const before = await stream.until((f) => f.event === "approval.requested");
    const requested = json(before.frames.at(-1));
    expect(requested).toEqual({
      type: "approval.requested",
      approval_id: expect.any(String),
      kind: "file_change",
      changes: [{ path: join(workDir, "approved.txt"), kind: "add" }],
    });
    expect(existsSync(join(workDir, "approved.txt"))).toBe(false);
    expect((await confirm("patch-1", requested.approval_id, "approve")).status).toBe(200);
    const frames = (await stream.rest()).frames;
    const change = frames.find((f) => f.event === "item.completed" && json(f).item.type === "file_change");
    expect(json(change).item).toMatchObject({ changes: [{ path: join(workDir, "approved.txt"), kind: "add" }], status: "completed" });
    expect(doneOf(frames).status).toBe("completed");
    expect(await Bun.file(join(workDir, "approved.txt")).text()).toBe("approved\n");
  }, 30_000);

  test("a file change denied: nothing is written, the item fails", async () => {
    const patch = "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: denied.txt\n+denied\n*** End Patch\nEOF";
    const stream = sseReader(await server.send({ type: "user_message", message: `run ${patch}`, work_dir: workDir, id: "patch-2" }));
    const requested = json((await stream.until((f) => f.event === "approval.requested")).frames.at(-1));
    expect((await confirm("patch-2", requested.approval_id, "deny")).status).toBe(200);
    const frames = (await stream.rest()).frames;
    const change = frames.find((f) => f.event === "item.completed" && json(f).item.type === "file_change");
    expect(json(change).item.status).toBe("failed");
    expect(doneOf(frames).status).toBe("completed");
    expect(existsSync(join(workDir, "denied.txt"))).toBe(false);
  }, 30_000);

  test("unknown approvals, runs that are not going, and bad bodies", async () => {
    const { stream, requested } = await askToWrite("errors-1", join(outside, "errors.txt"));
    const cases: Array<[body: Record<string, unknown>, status: number, code: string]> = [
      [{ type: "user_confirm", id: "errors-1", approval_id: "nope", decision: "approve" }, 404, "approval_not_found"],
      [{ type: "user_confirm", id: "not-running", approval_id: requested.approval_id, decision: "approve" }, 404, "run_not_found"],
      [{ type: "user_confirm", id: "errors-1", approval_id: requested.approval_id, decision: "maybe" }, 422, "invalid_request"],
      [{ type: "user_confirm", id: "errors-1", decision: "approve" }, 422, "invalid_request"],
    ];
    for (const [body, status, code] of cases) {
      const res = await server.send(body);
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    expect((await confirm("errors-1", requested.approval_id, "deny")).status).toBe(200);
    expect(doneOf((await stream.rest()).frames).status).toBe("completed");
  }, 30_000);
});

describe("an app-server that misbehaves (a scripted stand-in)", () => {
  const dir = mkdtempSync(join(tmpdir(), "fake-app-server-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The engine on the stand-in doing `behaviour`, and the lines it logs. */
  function fakeEngine(behaviour: string, options: Partial<AppServerEngineOptions> = {}, env: Record<string, string> = {}) {
    const logs: string[] = [];
    const engine = createAppServerEngine({
      codex: { path: fakeCodex(dir), pathDirs: [] },
      env: { PATH: process.env.PATH ?? "", FAKE_APP_SERVER: behaviour, ...env },
      bypassApprovalsAndSandbox: true,
      approvalPolicy: "never",
      approvalTimeoutMs: 1_000,
      requestTimeoutMs: 5_000,
      lean: false,
      configOverrides: [],
      processes: 1,
      log: createLogger("warn", (line) => void logs.push(line)),
      ...options,
    });
    return { engine, logs };
  }

  /** The whole server, on the stand-in doing `behaviour`. */
  const fakeServer = (behaviour: string) =>
    startTestServer({ engine: "app-server", codexPath: fakeCodex(dir), codexEnv: { PATH: process.env.PATH ?? "", FAKE_APP_SERVER: behaviour } });

  async function turnEvents(engine: Engine, input: string): Promise<unknown[]> {
    const events: unknown[] = [];
    for await (const event of engine.runTurn({ input, workDir: dir, signal: new AbortController().signal })) events.push(event);
    return events;
  }

  /** What the stand-in sends for a turn it answers. */
  const answered = (threadId: unknown, text: string) => [
    { type: "thread.started", thread_id: threadId },
    { type: "turn.started" },
    { type: "item.completed", item: { id: "item_0", type: "agent_message", text } },
    {
      type: "turn.completed",
      usage: { input_tokens: 0, cached_input_tokens: 0, cache_write_input_tokens: 0, output_tokens: 0, reasoning_output_tokens: 0 },
    },
  ];

  test("lines that are no message, and a notification whose handling throws, are skipped: the turn still completes", async () => {
    const { engine, logs } = fakeEngine("serves");
    try {
      expect(await turnEvents(engine, "garbled")).toEqual(answered("thread-1", "echo: garbled"));
      const skipped = logs.filter((line) => line.includes("codex app-server sent a line that was skipped"));
      expect(skipped).toHaveLength(3);
      expect(skipped.map((line) => / line=(.+)\n$/.exec(line)?.[1])).toEqual(["null", "[]", JSON.stringify(JSON.stringify({ method: "item/started" }))]);
      expect(skipped.map((line) => line.includes('reason="not a JSON-RPC message"'))).toEqual([true, true, false]);
      // The process reads on: its next turn is answered too.
      expect(await turnEvents(engine, "say again")).toEqual(answered("thread-3", "echo: say again"));
    } finally {
      await engine.close();
    }
  });

  test("the late end of another turn of the thread (turn.id, not turnId) does not end this one", async () => {
    const { engine } = fakeEngine("serves");
    try {
      expect(await turnEvents(engine, "stale")).toEqual(answered("thread-1", "echo: stale"));
    } finally {
      await engine.close();
    }
  });

  test("an approval codex withdraws (serverRequest/resolved) is settled at once, and codex gets no answer to it", async () => {
    const sent = join(dir, "withdrawn.log");
    const { engine } = fakeEngine("serves", { approvalTimeoutMs: 600_000 }, { FAKE_APP_SERVER_LOG: sent });
    try {
      const stop = new AbortController();
      const events: unknown[] = [];
      for await (const event of engine.runTurn({ input: "withdraw", workDir: dir, signal: stop.signal })) {
        events.push(event);
        if (event.type === "approval.resolved") stop.abort();
      }
      const approvalId = (events[2] as { approval_id: string }).approval_id;
      expect(events).toEqual([
        { type: "thread.started", thread_id: "thread-1" },
        { type: "turn.started" },
        { type: "approval.requested", approval_id: expect.any(String), kind: "command_execution", command: "touch /withdrawn" },
        { type: "approval.resolved", approval_id: approvalId, decision: "deny", by: "turn_ended" },
      ]);
      expect(engine.resolveApproval(approvalId, "approve")).toBe(false);
      const lines = readFileSync(sent, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line));
      expect(lines.map((line) => line.method ?? `answer to ${line.id}`)).toEqual(["initialize", "initialized", "thread/start", "turn/start", "turn/interrupt"]);
    } finally {
      await engine.close();
    }
  });

  test("--app-servers 2, one dead and waiting to restart: turns go to the live one, busy or not", async () => {
    const { engine } = fakeEngine("serves", { processes: 2, restartDelayMs: { first: 600_000, max: 600_000 } });
    const stop = new AbortController();
    try {
      engine.warm();
      await waitFor("two app-servers", () => engine.activeProcesses() === 2);
      const [victim] = descendants(process.pid).filter((info) => readFileSync(`/proc/${info.pid}/cmdline`, "utf8").includes("fake-app-server.ts"));
      process.kill(victim?.pid as number, "SIGKILL");
      await waitFor("one app-server", () => engine.activeProcesses() === 1);
      const holding = engine.runTurn({ input: "hold", workDir: dir, signal: stop.signal })[Symbol.asyncIterator]();
      expect((await holding.next()).value).toEqual({ type: "thread.started", thread_id: expect.any(String) });
      expect(await turnEvents(engine, "say served")).toEqual(answered(expect.stringMatching(/^thread-\d+$/), "echo: say served"));
      expect(engine.activeProcesses()).toBe(1);
      stop.abort();
      while (!(await holding.next()).done);
    } finally {
      stop.abort();
      await engine.close();
    }
  });

  test("overloaded: POST /messages answers 503 engine_busy with retry-after, and no run is kept", async () => {
    const server = fakeServer("overloaded");
    try {
      const res = await server.send({ type: "user_message", message: "say hi", id: "overloaded-1" });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("5");
      expect(await res.json()).toEqual({
        error: { code: "engine_busy", message: "codex app-server is overloaded: Server overloaded; retry later." },
      });
      expect((await fetch(`${server.url}/runs/overloaded-1`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  test("one that never reports an interrupted turn's end: the turn ends cancelled 3 s after the interrupt", async () => {
    const server = fakeServer("deaf");
    try {
      const stream = sseReader(await server.send({ type: "user_message", message: "say hi", id: "deaf-1" }));
      await stream.until((f) => f.event === "thread.started");
      expect((await server.send({ type: "user_cancel", id: "deaf-1" })).status).toBe(200);
      const cancelledAt = performance.now();
      const frames = (await stream.rest(10_000)).frames;
      expect(frames.map((f) => f.event)).toEqual(["thread.started", "done"]);
      expect(doneOf(frames)).toMatchObject({ status: "cancelled", thread_id: "fake-thread" });
      expect(performance.now() - cancelledAt).toBeGreaterThan(2_900);
      // The process was not stopped for it: it goes on serving the other turns.
      expect(await (await fetch(`${server.url}/metrics`)).text()).toContain("codex_processes_active 1\n");
    } finally {
      await server.close();
    }
  }, 15_000);

  test.each([
    ["dies-noisily", "codex app-server exited with code 4: WARNING: proceeding | 2026-11-25T21:28:46Z ERROR codex_app_server: no bubblewrap"],
    ["killed", "codex app-server exited with signal SIGKILL"],
  ])("one that is %s: the turn's error is its last words without colours, or only the signal", async (behaviour, message) => {
    const { engine } = fakeEngine(behaviour);
    try {
      const turn = async () => {
        for await (const _ of engine.runTurn({ input: "hi", workDir: dir, signal: new AbortController().signal })) {
        }
      };
      await expect(turn()).rejects.toThrow(new EngineError(message));
    } finally {
      await engine.close();
    }
  });

  test("one whose reason comes after its exit (a process it left holds its stderr): it is waited for, up to 1 s", async () => {
    const helperPid = join(dir, "helper.pid");
    const { engine } = fakeEngine("late-words", { restartDelayMs: { first: 600_000, max: 600_000 } }, { FAKE_APP_SERVER_LOG: helperPid });
    try {
      const started = performance.now();
      await expect(turnEvents(engine, "hi")).rejects.toThrow(new EngineError("codex app-server exited with code 5: Error: the reason, written late"));
      // The helper holds stderr open for 3.3 s: the reason is not held up until then.
      expect(performance.now() - started).toBeLessThan(2_500);
    } finally {
      process.kill(Number(readFileSync(helperPid, "utf8")), "SIGKILL");
      await engine.close();
    }
  });

  test("one that dies at once: the turn ends with error, and restarts come after a doubling delay", async () => {
    const { engine, logs } = fakeEngine("dies", { restartDelayMs: { first: 200, max: 800 } });
    try {
      const events: unknown[] = [];
      const turn = async () => {
        for await (const event of engine.runTurn({ input: "hi", workDir: dir, signal: new AbortController().signal })) events.push(event);
      };
      await expect(turn()).rejects.toThrow(new EngineError("codex app-server exited with code 3"));
      expect(events).toEqual([]);
      // While it waits to restart, a turn is refused as busy at once instead of waiting for it.
      await expect(turn()).rejects.toThrow(
        new EngineBusyError("codex app-server is restarting after it stopped (codex app-server exited with code 3); try again in 1 s", 1),
      );
      const delays = await waitFor("four restarts", () => {
        const found = logs.filter((line) => line.includes("codex app-server died; restarting it")).map((line) => /delay_ms=(\d+)/.exec(line)?.[1]);
        return found.length >= 4 ? found.slice(0, 4) : undefined;
      });
      expect(delays).toEqual(["200", "400", "800", "800"]);
    } finally {
      await engine.close();
    }
  });
});

describe("--approval-policy untrusted", () => {
  test("codex asks even for a command inside the sandbox, without a reason", async () => {
    const server = startTestServer({ engine: "app-server", bypassApprovalsAndSandbox: false, approvalPolicy: "untrusted" });
    try {
      const stream = sseReader(await server.send({ type: "user_message", message: "run echo asked", id: "untrusted-1" }));
      const requested = json((await stream.until((f) => f.event === "approval.requested")).frames.at(-1));
      expect(requested).toEqual({
        type: "approval.requested",
        approval_id: expect.any(String),
        kind: "command_execution",
        command: "/bin/bash -lc 'echo asked'",
        cwd: process.cwd(),
      });
      expect((await server.send({ type: "user_confirm", id: "untrusted-1", approval_id: requested.approval_id, decision: "approve" })).status).toBe(200);
      const frames = (await stream.rest()).frames;
      // Approved, it runs in the read-only sandbox, where a login shell may complain first (pyenv here).
      expect(agentTexts(frames)[0]).toMatch(/^ran: (.*\n)*asked$/);
    } finally {
      await server.close();
    }
  }, 30_000);
});

describe("the app-server process", () => {
  test("is not started by a server that cannot listen", async () => {
    const blocker = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("taken") });
    const dir = mkdtempSync(join(tmpdir(), "never-started-"));
    const started = join(dir, "started.log");
    try {
      const env = { PATH: process.env.PATH ?? "", FAKE_APP_SERVER: "serves", FAKE_APP_SERVER_LOG: started };
      const config = testConfig(env, { engine: "app-server", port: blocker.port, codexPath: fakeCodex(dir) });
      expect(() => startServer(config, createLogger("off"))).toThrow(ListenError);
      // The same server, listening, starts one app-server: the log then holds its handshake and nothing else.
      const listening = startServer({ ...config, port: 0 }, createLogger("off"));
      await waitFor("the listening server's app-server", () => existsSync(started) && readFileSync(started, "utf8").includes('"method":"initialized"'));
      await listening.shutdown();
      const lines = readFileSync(started, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line).method);
      expect(lines).toEqual(["initialize", "initialized"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await blocker.stop(true);
    }
  });

  test("gets the lean profile and --codex-config as -c overrides, in that order", async () => {
    const server = startTestServer({ engine: "app-server", codexConfigOverrides: ['model_reasoning_effort="low"'] });
    try {
      const [pid] = await waitFor("the app-server", () => {
        const found = appServersUnder(process.pid);
        return found.length === 1 ? found : undefined;
      });
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, -1);
      expect(argv.slice(1, 2)).toEqual(["app-server"]);
      const overrides = argv.flatMap((arg, i) => (arg === "-c" ? [argv[i + 1]] : []));
      expect(overrides).toEqual([...LEAN_OVERRIDES, 'model_reasoning_effort="low"']);
    } finally {
      await server.close();
    }
  });
});
