/**
 * Faults and limits against the real server process (`bun src/cli.ts`) and the real codex. After
 * each fault the server must answer /health, have no codex left, and its memory must be back near
 * where it started.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { locateCodex } from "../src/engine/codex-binary";
import { EXPOSED_WARNING } from "../src/cli";
import { type CliProcess, startCli } from "./fixtures/cli-process";
import { fakeCodex } from "./fixtures/fake-app-server";
import { ENGINES, type EngineName } from "../src/config";
import { appServersUnder, codexProcessesUnder, descendants, isAlive, turnProcessesUnder } from "./fixtures/processes";
import { readSse, sseReader } from "./fixtures/sse";
import { agentTexts, doneOf, postMessage, useScriptedCodex } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

const scripted = useScriptedCodex();

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(/(\d+)/.exec(line ?? "")?.[1]) * 1024;
}

/** Writes `request` as it is on a new connection to 127.0.0.1:`port`, and reads until the server closes it. */
async function rawExchange(port: number, request: string): Promise<string> {
  let answer = "";
  const decoder = new TextDecoder();
  await new Promise<void>((resolve, reject) => {
    void Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (socket) => void socket.write(request),
        data: (_socket, chunk) => void (answer += decoder.decode(chunk, { stream: true })),
        close: () => resolve(),
        error: (_socket, err) => reject(err),
      },
    }).catch(reject);
  });
  return answer;
}

/** Up, with no codex left from any turn: none at all with exec, just the one app-server with app-server. */
async function expectHealthy(cli: CliProcess, headers: Record<string, string> = {}, engine: EngineName = "exec") {
  expect((await fetch(`${cli.url}/health`, { headers, keepalive: false })).status).toBe(200);
  await waitFor("no codex process left from a turn", () => turnProcessesUnder(cli.process.pid).length === 0, 2_000);
  const appServers = engine === "exec" ? 0 : 1;
  await waitFor(`${appServers} app-server process(es)`, () => appServersUnder(cli.process.pid).length === appServers, 5_000);
}

/** The codex processes running the current turn: its `codex exec`, or the app-server. */
async function runningCodex(cli: CliProcess): Promise<number[]> {
  return waitFor("a codex process", () => {
    const found = codexProcessesUnder(cli.process.pid);
    return found.length > 0 ? found : undefined;
  });
}

for (const engine of ENGINES) {
  describe(`one server under faults, ${engine} engine`, () => {
    let cli: CliProcess;
    let baselineRss: number;
    // Each request on a connection of its own: this server closes a connection idle for 2 s, and a
    // pooled one it closes just as the client sends on it fails with ECONNRESET (seen once in CI,
    // within the first 9 ms of the 100 bad requests). Real clients meet that race with any idle
    // timeout; here it would only make a test fail for a reason that is not the one it tests.
    const send = (body: unknown, init: Parameters<typeof postMessage>[2] = {}) => postMessage(cli.url, body, { keepalive: false, ...init });
    const request = (path: string, init: RequestInit = {}) => fetch(`${cli.url}${path}`, { keepalive: false, ...init });

    beforeAll(async () => {
      cli = await startCli(["-a", "127.0.0.1:0", "--turn-timeout", "3", "--idle-timeout", "2", "--engine", engine], scripted.home.env);
      // One full turn first, so that the baseline includes what the first turn loads.
      await readSse(await send({ type: "user_message", message: "say warm" }));
      baselineRss = rssBytes(cli.process.pid);
    });

    afterEach(() => {
      expect(rssBytes(cli.process.pid) - baselineRss).toBeLessThan(40 * 1024 * 1024);
    });

    afterAll(async () => {
      const codex = codexProcessesUnder(cli.process.pid);
      expect(await cli.stop()).toBe(0);
      expect(codex.filter(isAlive)).toEqual([]);
    });

    test("a model that never answers: done status timeout, codex gone", async () => {
      const { frames } = await readSse(await send({ type: "user_message", message: "sleep 600000 never", id: "times-out" }), 15_000);
      expect(doneOf(frames)).toMatchObject({ status: "timeout", request_id: "times-out", error: "turn timeout" });
      await expectHealthy(cli, {}, engine);
    });

    test("user_cancel: 200, the stream ends cancelled, the turn stopped within 1 s", async () => {
      const requested = scripted.model.requests.length;
      const abandoned = scripted.model.abandoned;
      const stream = sseReader(await send({ type: "user_message", message: "sleep 600000 never", id: "cancel-me" }));
      await stream.until((f) => f.event === "turn.started");
      await waitFor("the model to be asked", () => scripted.model.requests.length > requested);
      const codex = await runningCodex(cli);
      const res = await send({ type: "user_cancel", id: "cancel-me" });
      const cancelledAt = performance.now();
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ cancelled: "cancel-me" });
      await waitFor("codex to drop the model request", () => scripted.model.abandoned > abandoned, 1_000);
      if (engine === "exec") await waitFor("codex to exit", () => codex.every((pid) => !isAlive(pid)), 1_000);
      // app-server interrupts the turn and goes on serving the others.
      else expect(appServersUnder(cli.process.pid)).toEqual(codex);
      expect(performance.now() - cancelledAt).toBeLessThan(1_000);
      expect(doneOf((await stream.rest()).frames)).toMatchObject({ status: "cancelled", request_id: "cancel-me" });
      await expectHealthy(cli, {}, engine);
    });

    test("DELETE /runs/{id} does the same", async () => {
      const stream = sseReader(await send({ type: "user_message", message: "sleep 600000 never", id: "delete-me" }));
      await stream.until((f) => f.event === "turn.started");
      const res = await request("/runs/delete-me", { method: "DELETE" });
      expect(await res.json()).toEqual({ cancelled: "delete-me" });
      expect(doneOf((await stream.rest()).frames).status).toBe("cancelled");
      await expectHealthy(cli, {}, engine);
    });

    test("codex killed mid-turn: done status error, the server carries on", async () => {
      const stream = sseReader(await send({ type: "user_message", message: "sleep 600000 never", id: "crashes" }));
      await stream.until((f) => f.event === "turn.started");
      const killed = await runningCodex(cli);
      for (const pid of killed) process.kill(pid, "SIGKILL");
      expect(doneOf((await stream.rest()).frames)).toMatchObject({
        status: "error",
        request_id: "crashes",
        error: expect.stringContaining("signal SIGKILL"),
      });
      await expectHealthy(cli, {}, engine);
      const { frames } = await readSse(await send({ type: "user_message", message: "say still here" }));
      expect(doneOf(frames).status).toBe("completed");
      // With app-server, a new process took over: the killed one is not reused.
      expect(codexProcessesUnder(cli.process.pid).filter((pid) => killed.includes(pid))).toEqual([]);
    });

    test("a model stream cut mid-way and a model error: done status failed", async () => {
      for (const message of ["cut", "fail"]) {
        const { frames } = await readSse(await send({ type: "user_message", message }));
        expect(doneOf(frames).status).toBe("failed");
      }
      await expectHealthy(cli, {}, engine);
    });

    test("100 bad requests in a row", async () => {
      const before = scripted.model.requests.length;
      const kinds: Array<[RequestInit, number]> = [
        [{ method: "POST", headers: { "content-type": "application/json" }, body: "{" }, 400],
        [{ method: "POST", headers: { "content-type": "text/plain" }, body: "hi" }, 415],
        [{ method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"user_message","message":""}' }, 422],
        [{ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "user_message", message: "x".repeat(1_100_000) }) }, 413],
        [{ method: "GET" }, 405],
      ];
      for (let i = 0; i < 100; i++) {
        const [init, status] = kinds[i % kinds.length] as [RequestInit, number];
        const res = await request("/messages", init);
        expect(res.status).toBe(status);
        await res.arrayBuffer();
      }
      expect(scripted.model.requests.length).toBe(before);
      await expectHealthy(cli, {}, engine);
    });

    test("50 clients that disconnect mid-stream leave nothing behind", async () => {
      for (let batch = 0; batch < 5; batch++) {
        await Promise.all(
          Array.from({ length: 10 }, async (_, n) => {
            const controller = new AbortController();
            const res = await send({ type: "user_message", message: "sleep 600000 never", id: `gone-${batch}-${n}` }, { signal: controller.signal });
            await sseReader(res).until((f) => f.event === "turn.started", 60_000);
            controller.abort();
          }),
        );
      }
      await waitFor("every codex turn process to exit", () => turnProcessesUnder(cli.process.pid).length === 0, 10_000);
      await waitFor("every run to end", async () => {
        const { runs } = (await (await request("/runs")).json()) as { runs: Array<{ status: string }> };
        return runs.every((run) => run.status !== "running");
      }, 10_000);
      await expectHealthy(cli, {}, engine);
    }, 120_000);

    test("a request body that stalls is cut off by the idle timeout", async () => {
      const port = Number(new URL(cli.url).port);
      let closed = false;
      let answer = "";
      const socket = await Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          data(_, chunk) {
            answer += new TextDecoder().decode(chunk);
          },
          close() {
            closed = true;
          },
        },
      });
      socket.write("POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":");
      await waitFor("the server to close the stalled connection", () => closed, 6_000);
      expect(answer).not.toContain("200 OK");
      await expectHealthy(cli, {}, engine);
    });

    test("headers over Bun's limit are refused, and the server carries on", async () => {
      const res = await request("/health", { headers: { "x-big": "x".repeat(64 * 1024) } });
      expect(res.status).toBe(431);
      await expectHealthy(cli, {}, engine);
    });

  });
}

describe("app-server engine lifecycle", () => {
  test("SIGTERM: a running turn is interrupted and ends cancelled, the app-server exits with the server", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--engine", "app-server", "--app-servers", "2", "--shutdown-timeout", "1"], scripted.home.env);
    const appServers = await waitFor("two app-servers", () => {
      const found = appServersUnder(cli.process.pid);
      return found.length === 2 ? found : undefined;
    });
    const stream = sseReader(await postMessage(cli.url, { type: "user_message", message: "sleep 600000 never", id: "at-shutdown" }));
    await stream.until((f) => f.event === "turn.started");
    expect(await cli.stop("SIGTERM")).toBe(0);
    expect(doneOf((await stream.rest()).frames)).toMatchObject({ status: "cancelled", request_id: "at-shutdown" });
    expect(appServers.filter(isAlive)).toEqual([]);
  });

  test("a second signal exits at once with 130, the app-servers killed with it, not left to wind down", async () => {
    // Stand-ins that only SIGKILL ends: codex itself exits when its stdin closes, too soon to tell.
    const dir = mkdtempSync(join(tmpdir(), "stubborn-"));
    const cli = await startCli(
      ["-a", "127.0.0.1:0", "--engine", "app-server", "--app-servers", "2", "--shutdown-timeout", "60", "--codex-path", fakeCodex(dir)],
      { ...scripted.home.env, FAKE_APP_SERVER: "stubborn" },
    );
    const appServers = await waitFor("two stand-ins", () => {
      const found = descendants(cli.process.pid).filter((info) => info.name.startsWith("bun")).map((info) => info.pid);
      return found.length === 2 ? found : undefined;
    });
    try {
      const stream = sseReader(await postMessage(cli.url, { type: "user_message", message: "say hi" }));
      await stream.until((f) => f.event === "thread.started");
      cli.process.kill("SIGTERM");
      await waitFor("shutdown to begin", () => cli.stderr().includes("shutting down"));
      expect(await cli.stop("SIGINT")).toBe(130);
      // The kernel ends a SIGKILLed process a moment after kill() returns.
      await waitFor("the app-servers to die", () => appServers.filter(isAlive).length === 0, 1_000);
    } finally {
      for (const pid of appServers.filter(isAlive)) process.kill(pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("access control end to end", () => {
  test("a token from the environment guards the API, is not logged, and codex never sees it", async () => {
    const token = "tok-9f3c2e71";
    const cli = await startCli(["-a", "127.0.0.1:0"], { ...scripted.home.env, CODEX_SERVER_AUTH_TOKEN: token, RUST_LOG: "trace" });
    try {
      expect(cli.stdout()).toContain("Auth: bearer token required");
      expect((await fetch(`${cli.url}/health`)).status).toBe(200);
      const refused = await postMessage(cli.url, { type: "user_message", message: "say hi" });
      expect(refused.status).toBe(401);
      const { frames } = await readSse(
        await postMessage(cli.url, { type: "user_message", message: "run echo \"[${CODEX_SERVER_AUTH_TOKEN:-unset}]\"" }, { headers: { authorization: `Bearer ${token}` } }),
      );
      expect(agentTexts(frames)).toEqual(["ran: [unset]"]);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
    expect(cli.stderr()).not.toContain(token);
  });

  test("bound to loopback: a foreign Host or a cross-site Origin gets 403", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0"], scripted.home.env);
    try {
      const rebinding = await fetch(`${cli.url}/health`, { headers: { host: "attacker.example" } });
      expect(rebinding.status).toBe(403);
      const crossSite = await postMessage(cli.url, { type: "user_message", message: "say hi" }, { headers: { origin: "https://attacker.example" } });
      expect(crossSite.status).toBe(403);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("bound to 0.0.0.0: a rebinding-shaped request gets 403; a curl-shaped one under the same Host runs its turn", async () => {
    const cli = await startCli(["-a", "0.0.0.0:0"], scripted.home.env);
    try {
      const port = new URL(cli.url).port;
      const loopback = `http://127.0.0.1:${port}`;
      const rebound = `attacker.example:${port}`;
      const rebinding = await postMessage(loopback, { type: "user_message", message: "say rebound" }, { headers: { host: rebound, origin: `http://${rebound}` } });
      expect(rebinding.status).toBe(403);
      expect(await rebinding.json()).toEqual({
        error: {
          code: "forbidden_host",
          message: "A browser may reach this server only by IP address, localhost or a name that --allowed-hosts lists, not as attacker.example.",
        },
      });
      const curl = await postMessage(loopback, { type: "user_message", message: "say through a proxy" }, { headers: { host: rebound } });
      expect(curl.status).toBe(200);
      expect(agentTexts((await readSse(curl)).frames)).toEqual(["through a proxy"]);
      expect(scripted.model.requests.map((request) => request.prompts.at(-1))).not.toContain("say rebound");
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("HTTP/1.0 without Host, or with an empty one: 400 missing_host, logged under its own path, no turn", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0"], scripted.home.env);
    try {
      const port = Number(new URL(cli.url).port);
      const body = JSON.stringify({ type: "user_message", message: "say hostless" });
      const requests = [
        "GET /health HTTP/1.0\r\n\r\n",
        "GET /health HTTP/1.0\r\nHost:\r\n\r\n",
        `POST /messages HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      ];
      for (const request of requests) {
        const answer = await rawExchange(port, request);
        expect(answer).toStartWith("HTTP/1.1 400 Bad Request\r\n");
        expect(answer.slice(answer.indexOf("\r\n\r\n") + 4)).toBe(
          '{"error":{"code":"missing_host","message":"Send a Host header: this server needs it to tell whom a request is for."}}',
        );
      }
      await waitFor("three log lines", () => cli.stderr().split("\n").filter((line) => line.includes("status=400")).length === 3);
      const logged = cli.stderr().split("\n").filter((line) => line.includes("status=400")).map((line) => /INFO {2}(\S+ \S+) status=400/.exec(line)?.[1]);
      expect(logged).toEqual(["GET /health", "GET /health", "POST /messages"]);
      expect(scripted.model.requests.map((request) => request.prompts.at(-1))).not.toContain("say hostless");
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("--allowed-origins: that origin gets CORS, preflight included, and can run a turn", async () => {
    const origin = "https://app.example";
    const cli = await startCli(["-a", "127.0.0.1:0", "--allowed-origins", origin, "--auth-token", "t0k"], scripted.home.env);
    try {
      const preflight = await fetch(`${cli.url}/messages`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe(origin);
      const res = await postMessage(cli.url, { type: "user_message", message: "say from the browser" }, { headers: { origin, authorization: "Bearer t0k" } });
      expect(res.headers.get("access-control-allow-origin")).toBe(origin);
      expect(agentTexts((await readSse(res)).frames)).toEqual(["from the browser"]);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("beyond loopback, bypass on and no token: a loud warning; with a token: none", async () => {
    const open = await startCli(["-a", "0.0.0.0:0"], scripted.home.env);
    expect(await open.stop()).toBe(0);
    expect(open.stdout()).toContain(EXPOSED_WARNING);
    expect(open.stderr()).toContain(` WARN  ${EXPOSED_WARNING}\n`);

    const guarded = await startCli(["-a", "0.0.0.0:0", "--auth-token", "t0k"], scripted.home.env);
    expect(await guarded.stop()).toBe(0);
    expect(guarded.stdout() + guarded.stderr()).not.toContain("WARNING");
  });
});

describe("limits end to end", () => {
  test("--workspace-root: the default work_dir, and nothing outside it", async () => {
    const root = join(scripted.scratch, "root");
    mkdirSync(root);
    const cli = await startCli(["-a", "127.0.0.1:0", "--workspace-root", root], scripted.home.env);
    try {
      const { frames } = await readSse(await postMessage(cli.url, { type: "user_message", message: "run pwd" }));
      expect(agentTexts(frames)).toEqual([`ran: ${root}`]);
      const before = scripted.model.requests.length;
      const outside = await postMessage(cli.url, { type: "user_message", message: "run pwd", work_dir: scripted.scratch });
      expect(outside.status).toBe(403);
      expect(scripted.model.requests.length).toBe(before);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("--max-concurrent-turns 1: a second turn gets 429 while the first runs", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--max-concurrent-turns", "1"], scripted.home.env);
    try {
      const first = sseReader(await postMessage(cli.url, { type: "user_message", message: "sleep 600000 never", id: "first" }));
      await first.until((f) => f.event === "turn.started");
      const second = await postMessage(cli.url, { type: "user_message", message: "say hi" });
      expect(second.status).toBe(429);
      expect(second.headers.get("retry-after")).toBe("5");
      await fetch(`${cli.url}/runs/first`, { method: "DELETE" });
      expect(doneOf((await first.rest()).frames).status).toBe("cancelled");
      const third = await readSse(await postMessage(cli.url, { type: "user_message", message: "say room again" }));
      expect(doneOf(third.frames).status).toBe("completed");
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("--run-retention-bytes 3m: finished runs' events stay within it, the oldest runs dropped first", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--run-retention-bytes", "3m"], scripted.home.env);
    const retained = async () => {
      const text = await (await fetch(`${cli.url}/metrics`)).text();
      return [/\ncodex_retained_runs (\d+)\n/, /\ncodex_retained_run_bytes (\d+)\n/].map((gauge) => Number(gauge.exec(text)?.[1]));
    };
    try {
      // Each turn's events hold its command's output, 1 MB, about a third of the budget.
      for (const id of ["big-1", "big-2", "big-3", "big-4", "big-5", "big-6"]) {
        const { frames } = await readSse(await postMessage(cli.url, { type: "user_message", message: "sh head -c 1000000 /dev/zero | tr '\\0' x", id }));
        expect(doneOf(frames).status).toBe("completed");
        const [, bytes] = await retained();
        expect(bytes).toBeGreaterThan(1_000_000);
        expect(bytes).toBeLessThanOrEqual(3 * 1024 * 1024);
      }
      const [runs, bytes] = await retained();
      expect(runs).toBe(3);
      expect(bytes).toBeGreaterThan(3_000_000);
      const statuses = await Promise.all([1, 2, 3, 4, 5, 6].map(async (n) => (await fetch(`${cli.url}/runs/big-${n}`)).status));
      expect(statuses).toEqual([404, 404, 404, 200, 200, 200]);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("a codex binary removed after start: done status error, not a hang; the server stays up", async () => {
    const link = join(scripted.scratch, "codex");
    symlinkSync(locateCodex({ explicitPath: undefined, pathEnv: "", executableDir: scripted.scratch }).path, link);
    const cli = await startCli(["-a", "127.0.0.1:0", "--codex-path", link], scripted.home.env);
    try {
      rmSync(link);
      const { frames } = await readSse(await postMessage(cli.url, { type: "user_message", message: "say hi", id: "no-binary" }), 10_000);
      expect(frames.map((f) => f.event)).toEqual(["done"]);
      expect(doneOf(frames)).toMatchObject({ status: "error", error: `codex binary ${link} is missing or not executable` });
      await expectHealthy(cli);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });
});
