/** The CLI as users run it: `bun src/cli.ts`, a separate process, with the real codex and the scripted model. */
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, startCli } from "./fixtures/cli-process";
import { createCodexHome } from "./fixtures/codex-home";
import { codexProcessesUnder, isAlive } from "./fixtures/processes";
import { readSse, sseReader } from "./fixtures/sse";
import { agentTexts, postMessage, useScriptedCodex } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

const BYPASS = "--dangerously-bypass-approvals-and-sandbox";

const scripted = useScriptedCodex();

describe("flags that end the process", () => {
  // citty coloured its usage whatever stdout was, unless CI, TEST or NO_COLOR was set.
  const colourTerminal = { CI: undefined, TEST: undefined, NO_COLOR: undefined, TERM: "xterm-256color" };

  for (const flag of ["--help", "-h"]) {
    test(`${flag} into a pipe: plain text, every option with its default, --version and --help too`, async () => {
      const { code, stdout, stderr } = await runCli([flag], colourTerminal);
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      expect(stdout).not.toContain("\u001b");
      expect(stdout).toContain("USAGE sse-http-server [OPTIONS]");
      expect(stdout).toMatch(/\n {2}-a, --addr=<HOST:PORT>\n {6}Address to listen on.*\(Default: 0\.0\.0\.0:8081\)\n/);
      expect(stdout).toMatch(/\n {2}--dangerously-bypass-approvals-and-sandbox=<true\|false>\n {6}Run codex with sandbox danger-full-access/);
      expect(stdout).toMatch(/\n {2}--codex-path=<PATH>\n {6}The codex binary \(env CODEX_PATH\)/);
      expect(stdout).toMatch(/\n {2}--no-console\n {6}Do not serve the web console/);
      expect(stdout).toMatch(/\n {2}-v, --version\n {6}Print this server's version/);
      expect(stdout).toMatch(/\n {2}-h, --help\n {6}Print this help\n/);
    });
  }

  test("--help on a terminal: flag names in colour, unless NO_COLOR is set", async () => {
    const onTerminal = async (env: Record<string, string | undefined>) => {
      // `script` runs the command on a pseudo-terminal, as a user's shell would.
      const child = Bun.spawn(["script", "-qec", `bun ${new URL("../src/cli.ts", import.meta.url).pathname} --help`, "/dev/null"], {
        env: { ...process.env, ...colourTerminal, ...env },
        stdin: "ignore",
        stdout: "pipe",
      });
      const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
      expect(code).toBe(0);
      return stdout;
    };
    expect(await onTerminal({})).toContain("\u001b[36m-a, --addr=<HOST:PORT>\u001b[0m");
    expect(await onTerminal({ NO_COLOR: "1" })).not.toContain("\u001b");
  });

  const usageErrors: Array<[string, string[], string]> = [
    ["a bad address", ["--addr", "localhost"], 'error: invalid address "localhost": expected HOST:PORT, e.g. 127.0.0.1:8081 or [::1]:8081\n'],
    ["an unbracketed IPv6 address", ["-a", "::1:8081"], 'error: invalid address "::1:8081": expected HOST:PORT, e.g. 127.0.0.1:8081 or [::1]:8081\n'],
    ["a bad bypass value", [`${BYPASS}=nope`], `error: invalid value "nope" for ${BYPASS}: expected true or false\n`],
    ["an unknown option", ["--port", "80"], "error: unknown option --port; see --help\n"],
  ];
  for (const [name, args, message] of usageErrors) {
    test(`${name}: one line, exit code 2`, async () => {
      expect(await runCli(args)).toEqual({ code: 2, stdout: "", stderr: message });
    });
  }

  const BAD_TOKEN = "has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. `openssl rand -hex 32`";
  const tokenErrors: Array<[string, (scratch: string) => string[], Record<string, string>, (scratch: string) => string]> = [
    ["a token with a space", () => [], { CODEX_SERVER_AUTH_TOKEN: "my token" }, () => `CODEX_SERVER_AUTH_TOKEN ${BAD_TOKEN}`],
    ["an empty token variable", () => [], { CODEX_SERVER_AUTH_TOKEN: "" }, () => "CODEX_SERVER_AUTH_TOKEN is empty: set a token, or none to run without one"],
    ["an empty --auth-token", () => ["--auth-token", ""], {}, () => "--auth-token is empty: set a token, or none to run without one"],
    [
      "a token file that is not there",
      (scratch) => ["--auth-token-file", join(scratch, "no-token")],
      {},
      (scratch) => `cannot read --auth-token-file ${join(scratch, "no-token")}: ENOENT: no such file or directory`,
    ],
    [
      "a token file and a token",
      (scratch) => ["--auth-token-file", join(scratch, "no-token")],
      { CODEX_SERVER_AUTH_TOKEN: "0123456789abcdef" },
      () => "CODEX_SERVER_AUTH_TOKEN and --auth-token-file are both set: give the token one way",
    ],
  ];
  for (const [name, args, env, message] of tokenErrors) {
    test(`${name}: one line, exit code 2, nothing started`, async () => {
      expect(await runCli(["-a", "127.0.0.1:0", ...args(scripted.scratch)], { ...scripted.home.env, ...env })).toEqual({
        code: 2,
        stdout: "",
        stderr: `error: ${message(scripted.scratch)}\n`,
      });
    });
  }

  test("--version prints the server's and codex's versions", async () => {
    const { code, stdout, stderr } = await runCli(["--version"]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout).toMatch(/^sse-http-server \d+\.\d+\.\d+\ncodex-cli \d+\.\d+\.\d+ \(\/\S+\/codex\)\n$/);
  });

  test("--version without a codex: the server's version, one error line, exit code 1", async () => {
    const missing = join(scripted.scratch, "no-codex-here");
    const { code, stdout, stderr } = await runCli(["--version", "--codex-path", missing]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^sse-http-server \d+\.\d+\.\d+\n$/);
    expect(stderr).toBe(`error: codex binary ${missing} is missing or not executable\n`);
  });

  test("a port in use: one line, exit code 1", async () => {
    const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("taken") });
    try {
      expect(await runCli(["-a", `127.0.0.1:${taken.port}`], scripted.home.env)).toEqual({
        code: 1,
        stdout: "",
        stderr: `error: cannot listen on http://127.0.0.1:${taken.port}: the address is already in use\n`,
      });
    } finally {
      await taken.stop(true);
    }
  });

  test("no codex: one line at start-up, exit code 1", async () => {
    const missing = join(scripted.scratch, "no-codex");
    expect(await runCli(["-a", "127.0.0.1:0", "--codex-path", missing])).toEqual({
      code: 1,
      stdout: "",
      stderr: `error: codex binary ${missing} is missing or not executable\n`,
    });
  });
});

describe("a running server", () => {
  test("banner, a full turn, and one log line per request", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0"], scripted.home.env);
    try {
      const port = new URL(cli.url).port;
      const banner = cli.stdout().trimEnd().split("\n");
      expect(banner[0]).toMatch(/^╭─+╮$/);
      expect(banner.at(-1)).toMatch(/^╰─+╯$/);
      expect(banner.map((line) => line.replace(/^│ {2}| +│$/g, ""))).toEqual([
        banner[0] as string,
        expect.stringMatching(/^codex-http-server \d+\.\d+\.\d+ \(codex-cli \d+\.\d+\.\d+\)$/),
        "",
        `Server listening on: http://127.0.0.1:${port}`,
        "",
        "Endpoints:",
        "  GET    /                   web console",
        "  GET    /health             health check",
        "  GET    /ready              readiness: codex can authenticate",
        "  POST   /messages           run a Codex turn, streamed as SSE",
        "  GET    /runs               running and recent turns",
        "  GET    /runs/{id}          one turn",
        "  GET    /runs/{id}/events   replay and follow a turn (Last-Event-ID)",
        "  DELETE /runs/{id}          cancel a running turn",
        "  GET    /threads            stored threads (limit, cursor, cwd, q)",
        "  GET    /threads/{id}       a thread and its turns",
        "  PATCH  /threads/{id}       rename a thread",
        "  DELETE /threads/{id}       archive a thread",
        "  POST   /threads/{id}/fork  a new thread with its history",
        "  GET    /openapi.json       OpenAPI 3.1 description",
        "  GET    /metrics            Prometheus metrics",
        "",
        "Engine: exec (one codex exec process per turn)",
        "Mode: bypass ON (sandbox danger-full-access, approvals never)",
        "Auth: none",
        "Hosts: loopback addresses, localhost",
        "Codex login: ok",
        banner.at(-1) as string,
      ]);

      const health = await fetch(`${cli.url}/health`, { headers: { "x-request-id": "health-1" } });
      expect(await health.text()).toBe('{"status":"ok"}');
      const { frames } = await readSse(await postMessage(cli.url, { type: "user_message", message: "say from the cli", id: "cli-turn-1" }));
      expect(agentTexts(frames)).toEqual(["from the cli"]);
      expect(JSON.parse(frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", request_id: "cli-turn-1" });

      await waitFor("the turn's log line", () => cli.stderr().includes("turn finished request_id=cli-turn-1"));
      const lines = cli.stderr().trimEnd().split("\n");
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/^\S+Z INFO {2}GET \/health status=200 duration_ms=[\d.]+ request_id=health-1$/);
      expect(lines[1]).toMatch(/^\S+Z INFO {2}POST \/messages status=200 duration_ms=[\d.]+ request_id=cli-turn-1$/);
      expect(lines[2]).toMatch(/^\S+Z INFO {2}turn finished request_id=cli-turn-1 thread_id=[0-9a-f-]{36} status=completed duration_ms=\d+$/);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("an empty CODEX_HOME and no API key: the banner and one log line say codex cannot authenticate and what to do; /ready answers 503", async () => {
    const home = mkdtempSync(join(scripted.scratch, "empty-home-"));
    const cli = await startCli(["-a", "127.0.0.1:0"], { CODEX_HOME: home, OPENAI_API_KEY: undefined, CODEX_API_KEY: undefined });
    try {
      const advice = `codex is not logged in (CODEX_HOME ${home}) and no API key is set: run \`codex login\` with that CODEX_HOME, or set OPENAI_API_KEY`;
      const banner = cli.stdout().trimEnd().split("\n").map((line) => line.replace(/^│ {2}| +│$/g, ""));
      expect(banner.slice(-3, -1)).toEqual(["", `WARNING: codex cannot authenticate: ${advice}`]);
      expect(banner).not.toContain("Codex login: ok");
      await waitFor("the warning", () => cli.stderr().includes("WARN"));
      expect(cli.stderr()).toMatch(new RegExp(`^\\S+Z WARN {2}codex cannot authenticate: ${advice.replace(/[()`]/g, "\\$&")}\n$`));
      const ready = await fetch(`${cli.url}/ready`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: "not_ready", codex_login: "missing" });
      // It serves all the same; /health stays as it is.
      expect((await fetch(`${cli.url}/health`)).status).toBe(200);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("the scripted model's provider without its key variable: the warning names the variable", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0"], { ...scripted.home.env, MOCK_API_KEY: undefined, OPENAI_API_KEY: undefined, CODEX_API_KEY: undefined });
    try {
      const warning = `codex cannot authenticate: model provider "mock" takes its key from MOCK_API_KEY, which is not set in the server's environment: set it`;
      expect(cli.stdout()).toContain(`WARNING: ${warning}`);
      await waitFor("the warning", () => cli.stderr().includes(warning));
      expect((await fetch(`${cli.url}/ready`)).status).toBe(503);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("listens on IPv6 loopback", async () => {
    const cli = await startCli(["-a", "[::1]:0"], scripted.home.env);
    try {
      expect(cli.url).toMatch(/^http:\/\/\[::1\]:\d+$/);
      const res = await fetch(`${cli.url}/health`);
      expect(res.status).toBe(200);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  for (const args of [[BYPASS, "false"], [`${BYPASS}=false`]]) {
    test(`${args.join(" ")}: the banner says so and the model sees codex's sandbox`, async () => {
      // A fresh CODEX_HOME: codex marks a directory trusted (workspace-write) once it ran there with full access.
      const fresh = createCodexHome(scripted.model.url);
      const cli = await startCli(["-a", "127.0.0.1:0", ...args], fresh.env);
      try {
        expect(cli.stdout()).toContain("Mode: bypass OFF (codex's own sandbox, approvals never)");
        const { frames } = await readSse(await postMessage(cli.url, { type: "user_message", message: "sandbox" }));
        expect(agentTexts(frames)).toEqual(["read-only"]);
      } finally {
        expect(await cli.stop()).toBe(0);
        fresh.remove();
      }
    });
  }

  test("--log-format json: one object a line, with level, time, request id and thread id", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--log-format", "json"], scripted.home.env);
    try {
      const { frames } = await readSse(await postMessage(cli.url, { type: "user_message", message: "say logged", id: "json-log-1" }));
      await waitFor("the turn's log line", () => cli.stderr().includes('"msg":"turn finished"'));
      const lines = cli.stderr().trimEnd().split("\n").map((line) => JSON.parse(line));
      expect(lines).toEqual([
        { time: expect.stringMatching(/Z$/), level: "info", msg: "POST /messages", status: 200, duration_ms: expect.any(Number), request_id: "json-log-1" },
        {
          time: expect.stringMatching(/Z$/),
          level: "info",
          msg: "turn finished",
          request_id: "json-log-1",
          thread_id: JSON.parse(frames.at(-1)?.data ?? "{}").thread_id,
          status: "completed",
          duration_ms: expect.any(Number),
        },
      ]);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  test("RUST_LOG=error keeps info lines out; RUST_LOG=debug adds debug lines", async () => {
    const quiet = await startCli(["-a", "127.0.0.1:0"], { ...scripted.home.env, RUST_LOG: "error" });
    await fetch(`${quiet.url}/health`);
    expect(await quiet.stop()).toBe(0);
    expect(quiet.stderr()).toBe("");

    const chatty = await startCli(["-a", "127.0.0.1:0"], { ...scripted.home.env, RUST_LOG: "debug" });
    expect(await chatty.stop()).toBe(0);
    expect(chatty.stderr()).toMatch(/ DEBUG codex binary path=\S+\/codex\n/);
    expect(chatty.stderr()).toMatch(/ INFO {2}shutting down signal=SIGTERM running_turns=0\n/);
  });

  test("SIGTERM: running turns get --shutdown-timeout, then end cancelled; exit 0, no codex left", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--shutdown-timeout", "1"], scripted.home.env);
    const stream = sseReader(await postMessage(cli.url, { type: "user_message", message: "sleep 60000 never", id: "at-shutdown" }));
    await stream.until((f) => f.event === "turn.started");
    const codex = await waitFor("a codex process", () => {
      const found = codexProcessesUnder(cli.process.pid);
      return found.length > 0 ? found : undefined;
    });
    const signalledAt = performance.now();
    expect(await cli.stop("SIGTERM")).toBe(0);
    expect(performance.now() - signalledAt).toBeGreaterThanOrEqual(1_000);
    const { frames } = await stream.rest();
    expect(frames.at(-1)?.event).toBe("done");
    expect(JSON.parse(frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "cancelled", request_id: "at-shutdown" });
    for (const pid of codex) expect(isAlive(pid)).toBe(false);
    expect(cli.stderr()).toContain("cancelling turns still running count=1");
  });

  test("SIGTERM: a turn that ends within the shutdown timeout completes", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--shutdown-timeout", "30"], scripted.home.env);
    const stream = sseReader(await postMessage(cli.url, { type: "user_message", message: "sleep 1500 made it", id: "finishes" }));
    await stream.until((f) => f.event === "turn.started");
    await waitFor("the model to be asked", () => scripted.model.requests.at(-1)?.prompts.at(-1) === "sleep 1500 made it");
    expect(await cli.stop("SIGTERM")).toBe(0);
    const { frames } = await stream.rest();
    expect(agentTexts(frames)).toEqual(["made it"]);
    expect(JSON.parse(frames.at(-1)?.data ?? "{}")).toMatchObject({ status: "completed", request_id: "finishes" });
  });

  test("a second signal exits at once with 130, and still leaves no codex", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--shutdown-timeout", "60"], scripted.home.env);
    const stream = sseReader(await postMessage(cli.url, { type: "user_message", message: "sleep 60000 never" }));
    await stream.until((f) => f.event === "turn.started");
    const codex = await waitFor("a codex process", () => {
      const found = codexProcessesUnder(cli.process.pid);
      return found.length > 0 ? found : undefined;
    });
    cli.process.kill("SIGTERM");
    await waitFor("shutdown to begin", () => cli.stderr().includes("shutting down"));
    expect(await cli.stop("SIGINT")).toBe(130);
    await waitFor("codex to exit", () => codex.every((pid) => !isAlive(pid)), 2_000);
  });

  for (const given of ["--auth-token-file", "CODEX_SERVER_AUTH_TOKEN_FILE"]) {
    test(`${given}: the file's token guards the API; neither it nor the file's path reaches codex or the log`, async () => {
      const token = "file-token-5c1d9e07b2a4";
      const file = join(scripted.scratch, `token-${given}`);
      writeFileSync(file, `${token}\n`);
      const [args, env] = given.startsWith("--") ? [[given, file], {}] : [[], { [given]: file }];
      const cli = await startCli(["-a", "127.0.0.1:0", ...args], { ...scripted.home.env, ...env, RUST_LOG: "trace" });
      try {
        expect(cli.stdout()).toContain("Auth: bearer token required");
        const refused = await postMessage(cli.url, { type: "user_message", message: "say hi" });
        expect(refused.status).toBe(401);
        const message = 'run echo "[${CODEX_SERVER_AUTH_TOKEN:-unset}][${CODEX_SERVER_AUTH_TOKEN_FILE:-unset}]"';
        const answer = await postMessage(cli.url, { type: "user_message", message }, { headers: { authorization: `Bearer ${token}` } });
        expect(answer.status).toBe(200);
        expect(agentTexts((await readSse(answer)).frames)).toEqual(["ran: [unset][unset]"]);
      } finally {
        expect(await cli.stop()).toBe(0);
      }
      expect(cli.stderr()).not.toContain(token);
      expect(cli.stderr()).not.toContain(file);
    });
  }

  test("OPENAI_API_KEY reaches the model as the API key (codex itself reads only CODEX_API_KEY)", async () => {
    const openaiHome = mkdtempSync(join(tmpdir(), "openai-home-"));
    writeFileSync(join(openaiHome, "config.toml"), `model = "mock-model"\nopenai_base_url = "${scripted.model.url}"\n`);
    const env = { CODEX_HOME: openaiHome, OPENAI_API_KEY: "sk-from-openai-env", CODEX_API_KEY: undefined, MOCK_API_KEY: undefined };
    const cli = await startCli(["-a", "127.0.0.1:0"], env);
    try {
      const { frames } = await readSse(await postMessage(cli.url, { type: "user_message", message: "say keyed" }), 60_000);
      expect(agentTexts(frames)).toEqual(["keyed"]);
      expect(scripted.model.requests.at(-1)?.authorization).toBe("Bearer sk-from-openai-env");
    } finally {
      expect(await cli.stop()).toBe(0);
      rmSync(openaiHome, { recursive: true, force: true });
    }
  }, 60_000);

  test("RUST_LOG is the server's level only; CODEX_RUST_LOG is what codex (and so its commands) gets", async () => {
    for (const [env, seen] of [
      [{ RUST_LOG: "warn" }, "ran: [unset]"],
      [{ RUST_LOG: "warn", CODEX_RUST_LOG: "error" }, "ran: [error]"],
    ] as const) {
      const cli = await startCli(["-a", "127.0.0.1:0"], { ...scripted.home.env, CODEX_RUST_LOG: undefined, ...env });
      try {
        const { frames } = await readSse(await postMessage(cli.url, { type: "user_message", message: 'sh echo "[${RUST_LOG:-unset}]"' }));
        expect(agentTexts(frames)).toEqual([seen]);
      } finally {
        expect(await cli.stop()).toBe(0);
      }
    }
  }, 60_000);

  test("a codex that dies before reading its input fails the turn, not the server", async () => {
    const fake = join(scripted.scratch, "codex-dies");
    writeFileSync(fake, '#!/bin/sh\n[ "$1" = --version ] && { echo "codex-cli 0.0.0"; exit 0; }\nexit 3\n');
    chmodSync(fake, 0o755);
    const cli = await startCli(["-a", "127.0.0.1:0"], { ...scripted.home.env, CODEX_PATH: fake });
    try {
      for (const id of ["dies-1", "dies-2"]) {
        const { frames } = await readSse(await postMessage(cli.url, { type: "user_message", message: "x".repeat(900_000), id }));
        expect(frames.map((f) => f.event)).toEqual(["done"]);
        expect(JSON.parse(frames[0]?.data ?? "{}")).toMatchObject({ status: "error", request_id: id, error: expect.stringContaining("code 3") });
      }
      expect((await fetch(`${cli.url}/health`)).status).toBe(200);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
    expect(cli.stderr()).not.toContain("uncaught");
  });
});
