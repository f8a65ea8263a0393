/** Whether codex can authenticate: from the configuration, else the real `codex login status`; and what a credentials failure says. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkCodexLogin, type CodexLogin, CodexLoginStatus, describeTurnFailure, loginFromConfig, modelProvider } from "../src/engine/codex-auth";
import { locateCodex } from "../src/engine/codex-binary";
import { isAlive } from "./fixtures/processes";
import { waitFor } from "./fixtures/wait-for";

const MOCK_PROVIDER = { model_provider: "mock", model_providers: { mock: { name: "mock", base_url: "http://127.0.0.1:1/v1", env_key: "MOCK_API_KEY" } } };

describe("modelProvider", () => {
  test.each([
    ["nothing set", {}, [], "openai"],
    ["config.toml", MOCK_PROVIDER, [], "mock"],
    ["--codex-config over config.toml", MOCK_PROVIDER, ['model_provider="openai"'], "openai"],
    ["the last --codex-config", {}, ["model_provider=oss", "model_provider='mock'"], "mock"],
  ] as Array<[string, Record<string, unknown>, string[], string]>)("%s -> %p", (_, config, overrides, provider) => {
    expect(modelProvider(config, overrides)).toBe(provider);
  });
});

describe("loginFromConfig", () => {
  test.each([
    ["a custom provider whose env_key is set: ok, whatever codex login says", MOCK_PROVIDER, [], { MOCK_API_KEY: "k" }, "ok", 'model provider "mock" takes its key from MOCK_API_KEY, which is set'],
    [
      "a custom provider whose env_key is not set: missing, naming it, even with an OpenAI key",
      MOCK_PROVIDER,
      [],
      { OPENAI_API_KEY: "sk" },
      "missing",
      'model provider "mock" takes its key from MOCK_API_KEY, which is not set in the server\'s environment: set it',
    ],
    ["an empty env_key variable counts as not set", MOCK_PROVIDER, [], { MOCK_API_KEY: "" }, "missing", expect.stringContaining("MOCK_API_KEY, which is not set")],
    ["a provider that names no key variable needs none", { model_provider: "oss" }, [], {}, "ok", 'model provider "oss" names no key variable (env_key)'],
    ["OpenAI with OPENAI_API_KEY", {}, [], { OPENAI_API_KEY: "sk" }, "ok", "an API key is set (OPENAI_API_KEY)"],
    ["OpenAI with CODEX_API_KEY", {}, [], { CODEX_API_KEY: "sk" }, "ok", "an API key is set (CODEX_API_KEY)"],
    ["the provider chosen by --codex-config", MOCK_PROVIDER, ['model_provider="openai"'], { MOCK_API_KEY: "k", CODEX_API_KEY: "sk" }, "ok", "an API key is set (CODEX_API_KEY)"],
  ] as Array<[string, Record<string, unknown>, string[], Record<string, string>, string, unknown]>)("%s", (_, config, overrides, env, state, detail) => {
    expect(loginFromConfig(config, overrides, env)).toEqual({ state, detail } as CodexLogin);
  });

  test.each([
    ["OpenAI without a key", {}, [], {}],
    ["a custom provider that asks for OpenAI's credentials", { model_provider: "proxy", model_providers: { proxy: { requires_openai_auth: true } } }, [], {}],
    ["the mock provider overridden to OpenAI, with only its key set", MOCK_PROVIDER, ['model_provider="openai"'], { MOCK_API_KEY: "k" }],
  ] as Array<[string, Record<string, unknown>, string[], Record<string, string>]>)("%s: only codex can tell", (_, config, overrides, env) => {
    expect(loginFromConfig(config, overrides, env)).toBeUndefined();
  });
});

describe("checkCodexLogin with the real codex", () => {
  const codexPath = locateCodex({ explicitPath: undefined, pathEnv: process.env.PATH, executableDir: "/nonexistent" }).path;
  let home: string;
  let scratch: string;
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), "codex-auth-"));
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const freshHome = () => (home = mkdtempSync(join(scratch, "home-")));
  /** codex's environment without any API key. */
  const env = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: scratch, CODEX_HOME: home, ...extra });
  const check = (environment: Record<string, string>, path = codexPath, timeoutMs = 3_000) =>
    checkCodexLogin({ codexPath: path, env: environment, configOverrides: [], timeoutMs });

  test("an empty CODEX_HOME and no key: missing, saying what to do", async () => {
    freshHome();
    expect(await check(env())).toEqual({
      state: "missing",
      detail: `codex is not logged in (CODEX_HOME ${home}) and no API key is set: run \`codex login\` with that CODEX_HOME, or set OPENAI_API_KEY`,
    });
  });

  test("after `codex login --with-api-key`: ok, as codex login status says", async () => {
    freshHome();
    const login = Bun.spawnSync([codexPath, "login", "--with-api-key"], { env: env(), stdin: Buffer.from("sk-test-0123456789abcdef\n") });
    expect(login.exitCode).toBe(0);
    expect(await check(env())).toEqual({ state: "ok", detail: "Logged in using an API key - sk-test-***bcdef" });
  });

  test("the scripted model's provider with its key: ok without asking codex; without it: missing, naming the variable", async () => {
    freshHome();
    writeFileSync(join(home, "config.toml"), 'model_provider = "mock"\n[model_providers.mock]\nname = "mock"\nbase_url = "http://127.0.0.1:1/v1"\nenv_key = "MOCK_API_KEY"\n');
    // A codex path that cannot start: an answer other than unknown shows that codex was not asked.
    const noCodex = join(scratch, "no-codex");
    expect(await check(env({ MOCK_API_KEY: "test-key" }), noCodex)).toMatchObject({ state: "ok" });
    expect(await check(env(), noCodex)).toMatchObject({ state: "missing", detail: expect.stringContaining("MOCK_API_KEY") });
  });

  test("a config.toml codex refuses: unknown, with codex's complaint", async () => {
    freshHome();
    writeFileSync(join(home, "config.toml"), "model_provider = 3\n");
    expect(await check(env())).toEqual({
      state: "unknown",
      detail: expect.stringMatching(/^`codex login status` exited with 1: Error loading configuration: .*invalid type: integer `3`, expected a string$/),
    });
  });

  test("a codex that does not answer: unknown after the deadline, and it is killed", async () => {
    freshHome();
    const hanging = join(scratch, "hanging-codex");
    const pidFile = join(scratch, "hanging.pid");
    writeFileSync(hanging, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 30\n`);
    chmodSync(hanging, 0o755);
    expect(await check(env(), hanging, 300)).toEqual({ state: "unknown", detail: "`codex login status` did not answer within 0.3 s" });
    const pid = Number(await Bun.file(pidFile).text());
    await waitFor("the hanging codex to be killed", () => !isAlive(pid));
  });
});

describe("CodexLoginStatus", () => {
  test("checks at once; while not ok, checks again at most every recheckMs; once ok, no more", async () => {
    const answers: CodexLogin["state"][] = ["missing", "missing", "ok"];
    let checks = 0;
    let clock = 0;
    const status = new CodexLoginStatus(async () => ({ state: answers[checks++] ?? "ok", detail: "" }), 10_000, () => clock);
    expect(checks).toBe(1);
    expect((await status.current()).state).toBe("missing");
    clock = 9_999;
    expect((await status.current()).state).toBe("missing");
    expect(checks).toBe(1);
    clock = 10_000;
    expect((await status.current()).state).toBe("missing");
    expect(checks).toBe(2);
    clock = 20_000;
    expect((await status.current()).state).toBe("ok");
    clock = 90_000;
    expect((await status.current()).state).toBe("ok");
    expect(checks).toBe(3);
    expect((await status.startup).state).toBe("missing");
  });
});

describe("describeTurnFailure", () => {
  test.each([
    [
      "unexpected status 401 Unauthorized: Incorrect API key provided., url: http://127.0.0.1:1/v1/responses",
      "the model provider refused codex's credentials (401): run `codex login` with the server's CODEX_HOME, or set OPENAI_API_KEY; codex said: unexpected status 401 Unauthorized: Incorrect API key provided., url: http://127.0.0.1:1/v1/responses",
    ],
    [
      "Missing environment variable: `MOCK_API_KEY`.",
      "codex has no credentials for its model provider: set the variable in the server's environment; codex said: Missing environment variable: `MOCK_API_KEY`.",
    ],
    ["unexpected status 500 Internal Server Error: scripted failure", "unexpected status 500 Internal Server Error: scripted failure"],
    ["stream disconnected before completion", "stream disconnected before completion"],
  ])("%p -> %p", (message, described) => {
    expect(describeTurnFailure(message)).toBe(described);
  });
});
