import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseArgs } from "citty";
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { banner, EXPOSED_WARNING, isExposed } from "../src/cli";
import {
  args,
  buildConfig,
  collectRepeated,
  ConfigError,
  normalizeOptionalBoolean,
  parseAddress,
  parseAllowedHosts,
  parseBoolean,
  parseByteSize,
  parseCodexOverride,
  parseDirectory,
  parseLogFormat,
  parseLogLevel,
  parseOrigins,
  parsePositiveInteger,
  parseSeconds,
  parseWebhookAllowedHosts,
  WEBHOOK_SECRET_ONLY_WARNING,
  SHORT_TOKEN_WARNING,
} from "../src/flags";
import { defaultMaxConcurrentTurns } from "../src/config";
import { SHORT_TENANT_TOKEN_WARNING } from "../src/tenants/tokens-file";

const BYPASS = "dangerously-bypass-approvals-and-sandbox";

describe("parseAddress", () => {
  test.each([
    ["0.0.0.0:8081", "0.0.0.0", 8081],
    ["127.0.0.1:0", "127.0.0.1", 0],
    ["localhost:65535", "localhost", 65535],
    ["[::1]:8081", "::1", 8081],
    ["[::]:80", "::", 80],
    ["[fe80::1:2]:9", "fe80::1:2", 9],
    ["my-host.example.com:443", "my-host.example.com", 443],
    [" 127.0.0.1:8081 ", "127.0.0.1", 8081],
  ])("%p -> host %p port %p", (text, host, port) => {
    expect(parseAddress(text)).toEqual({ host, port });
  });

  test.each([
    "8081",
    ":8081",
    "127.0.0.1",
    "127.0.0.1:",
    "127.0.0.1:65536",
    "127.0.0.1:-1",
    "127.0.0.1:80a",
    "::1:8081",
    "[127.0.0.1]:80",
    "[::1:80",
    "[zz::1]:80",
    "bad_host:80",
    "-host:80",
    "http://127.0.0.1:80",
    "",
  ])("%p is rejected with a hint", (text) => {
    expect(() => parseAddress(text)).toThrow(
      new ConfigError(`invalid address "${text}": expected HOST:PORT, e.g. 127.0.0.1:8081 or [::1]:8081`),
    );
  });
});

describe("parseBoolean", () => {
  test.each([
    ["true", true],
    ["TRUE", true],
    ["1", true],
    ["yes", true],
    ["on", true],
    ["false", false],
    ["False", false],
    ["0", false],
    ["no", false],
    ["off", false],
  ])("%p -> %p", (text, value) => {
    expect(parseBoolean("flag", text)).toBe(value);
  });

  test("citty's --no-flag arrives as a boolean", () => {
    expect(parseBoolean("flag", false)).toBe(false);
  });

  test.each(["", "flase", "2", "truee"])("%p is an error, never silently true", (text) => {
    expect(() => parseBoolean("flag", text)).toThrow(`invalid value "${text}" for --flag: expected true or false`);
  });
});

describe("normalizeOptionalBoolean", () => {
  test.each([
    [[`--${BYPASS}`, "false"], [`--${BYPASS}=false`]],
    [[`--${BYPASS}`, "TRUE"], [`--${BYPASS}=TRUE`]],
    [[`--${BYPASS}=false`], [`--${BYPASS}=false`]],
    [[`--${BYPASS}`], [`--${BYPASS}=true`]],
    [[`--${BYPASS}`, "-a", "x:1"], [`--${BYPASS}=true`, "-a", "x:1"]],
    [["-a", "x:1", `--${BYPASS}`, "off"], ["-a", "x:1", `--${BYPASS}=off`]],
    [["--other", "false"], ["--other", "false"]],
  ])("%p -> %p", (argv, expected) => {
    expect(normalizeOptionalBoolean(argv, BYPASS)).toEqual(expected);
  });
});

describe("parseByteSize", () => {
  test.each([
    ["1048576", 1048576],
    ["1", 1],
    ["512k", 512 * 1024],
    ["2m", 2 * 1024 * 1024],
    ["2MiB", 2 * 1024 * 1024],
    ["64KB", 64 * 1024],
    ["1g", 1024 ** 3],
    ["2 GiB", 2 * 1024 ** 3],
    ["256m", 256 * 1024 * 1024],
  ])("%p -> %p", (text, bytes) => {
    expect(parseByteSize("max-body-bytes", text)).toBe(bytes);
  });

  test.each(["0", "-1", "1.5m", "1t", "", "lots", "99999999999999999999", "9999999g"])("%p is rejected", (text) => {
    expect(() => parseByteSize("max-body-bytes", text)).toThrow(ConfigError);
  });
});

describe("parseLogLevel", () => {
  test.each([
    [undefined, "info"],
    ["", "info"],
    ["error", "error"],
    ["WARN", "warn"],
    ["debug", "debug"],
    ["trace", "trace"],
    ["off", "off"],
    ["warn,codex_http_server=debug", "debug"],
    ["codex_http_server=trace,error", "trace"],
    ["error,codex_core=trace", "error"],
    ["sse_http_server=warn", "warn"],
  ])("RUST_LOG=%p -> %p", (rustLog, level) => {
    expect(parseLogLevel(rustLog)).toEqual({ level: level as never });
  });

  test("unknown words are reported and ignored, as env_logger does", () => {
    expect(parseLogLevel("loud,debug")).toEqual({ level: "debug", warning: 'RUST_LOG: ignored "loud"' });
  });
});

describe("buildConfig", () => {
  const build = (argv: string[], env: Record<string, string> = {}) =>
    buildConfig(parseArgs(normalizeOptionalBoolean(argv, BYPASS), args), env, "/srv", 24 * 1024 ** 3);

  test("defaults", () => {
    const { config, warnings } = build([], { PATH: "/bin" });
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      host: "0.0.0.0",
      port: 8081,
      bypassApprovalsAndSandbox: true,
      maxBodyBytes: 1048576,
      logLevel: "info",
      logFormat: "text",
      defaultWorkDir: "/srv",
      codexPath: undefined,
      codexEnv: { PATH: "/bin" },
      authToken: undefined,
      allowedOrigins: [],
      allowedHosts: [],
      maxConcurrentTurns: 81,
      turnTimeoutMs: undefined,
      stallTimeoutMs: 600_000,
      workspaceRoot: undefined,
      shutdownTimeoutMs: 30_000,
      idleTimeoutSeconds: 10,
      reattachGraceMs: 0,
      runRetentionMs: 600_000,
      runRetentionBytes: 256 * 1024 * 1024,
      webConsole: true,
      leanCodex: true,
      codexConfigOverrides: [],
      engine: "exec",
      appServers: 1,
      approvalPolicy: "never",
      approvalTimeoutMs: 300_000,
      webhookUrl: undefined,
      webhookSecret: undefined,
      webhookAllowedHosts: [],
    });
  });

  test("hardening flags", () => {
    const { config } = build([
      "--auth-token", "s3cret", "--allowed-origins", "https://a.example", "--max-concurrent-turns", "4",
      "--turn-timeout", "90", "--workspace-root", "/tmp", "--shutdown-timeout", "5", "--idle-timeout", "20",
      "--run-retention-bytes", "64m",
    ]);
    expect(config).toMatchObject({
      authToken: "s3cret",
      allowedOrigins: ["https://a.example"],
      maxConcurrentTurns: 4,
      turnTimeoutMs: 90_000,
      workspaceRoot: realpathSync("/tmp"),
      defaultWorkDir: realpathSync("/tmp"),
      shutdownTimeoutMs: 5_000,
      idleTimeoutSeconds: 20,
      runRetentionBytes: 64 * 1024 * 1024,
    });
  });

  test.each([
    [{ OPENAI_API_KEY: "sk-o" }, { OPENAI_API_KEY: "sk-o", CODEX_API_KEY: "sk-o" }],
    [{ OPENAI_API_KEY: "sk-o", CODEX_API_KEY: "sk-c" }, { OPENAI_API_KEY: "sk-o", CODEX_API_KEY: "sk-c" }],
    [{ CODEX_API_KEY: "sk-c" }, { CODEX_API_KEY: "sk-c" }],
    [{ OPENAI_API_KEY: "" }, { OPENAI_API_KEY: "" }],
  ])("API keys: %p -> codex gets %p", (env, codexEnv) => {
    expect(build([], env).config.codexEnv).toEqual(codexEnv);
  });

  test.each([
    [{ RUST_LOG: "debug" }, {}],
    [{ RUST_LOG: "debug", CODEX_RUST_LOG: "warn" }, { RUST_LOG: "warn" }],
    [{ CODEX_RUST_LOG: "codex_core=trace" }, { RUST_LOG: "codex_core=trace" }],
    [{ CODEX_RUST_LOG: "" }, {}],
  ])("log levels: %p -> codex gets %p (RUST_LOG is the server's own)", (env, codexEnv) => {
    expect(build([], env).config.codexEnv).toEqual(codexEnv);
  });

  test("the token may come from the environment, and is never passed on to codex", () => {
    const { config } = build([], { CODEX_SERVER_AUTH_TOKEN: "from-env", PATH: "/bin" });
    expect(config.authToken).toBe("from-env");
    expect(config.codexEnv).toEqual({ PATH: "/bin" });
  });

  test.each([
    [[`--${BYPASS}`, "false"], false],
    [[`--${BYPASS}=false`], false],
    [[`--no-${BYPASS}`], false],
    [[`--${BYPASS}`], true],
    [[`--${BYPASS}=true`], true],
  ])("%p -> bypass %p", (argv, bypass) => {
    expect(build(argv).config.bypassApprovalsAndSandbox).toBe(bypass);
  });

  test("flags and environment", () => {
    const { config, warnings } = build(["-a", "[::1]:9000", "--max-body-bytes", "2m"], {
      RUST_LOG: "nonsense",
      CODEX_PATH: "/opt/codex",
    });
    expect(config).toMatchObject({ host: "::1", port: 9000, maxBodyBytes: 2097152, logLevel: "info", codexPath: "/opt/codex" });
    expect(warnings).toEqual(['RUST_LOG: ignored "nonsense"']);
  });

  test.each([
    [[], {}, []],
    [[], { CODEX_SERVER_ALLOWED_HOSTS: "codex.example.com,.corp.example" }, ["codex.example.com", ".corp.example"]],
    [["--allowed-hosts", "a.example"], { CODEX_SERVER_ALLOWED_HOSTS: "b.example" }, ["a.example"]],
    [["--allowed-hosts="], { CODEX_SERVER_ALLOWED_HOSTS: "b.example" }, []],
  ] as Array<[string[], Record<string, string>, string[]]>)("allowed hosts from %p and %p -> %p", (argv, env, allowedHosts) => {
    expect(build(argv, env).config.allowedHosts).toEqual(allowedHosts);
  });

  test("--codex-path wins over CODEX_PATH", () => {
    expect(build(["--codex-path", "/a/codex"], { CODEX_PATH: "/b/codex" }).config.codexPath).toBe("/a/codex");
  });

  test.each([
    [["--adr", "x"], "unknown option --adr; see --help"],
    [["serve"], 'unexpected argument "serve"; see --help'],
    [[`--${BYPASS}=maybe`], `invalid value "maybe" for --${BYPASS}: expected true or false`],
    [["-a", "nope"], 'invalid address "nope": expected HOST:PORT, e.g. 127.0.0.1:8081 or [::1]:8081'],
  ])("%p -> %p", (argv, message) => {
    expect(() => build(argv)).toThrow(new ConfigError(message));
  });
});

describe("auth token", () => {
  const LONG = "0123456789abcdef0123";
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "token-"));
    for (const [name, text] of Object.entries({
      plain: LONG,
      newline: `${LONG}\n`,
      crlf: `${LONG}\r\n`,
      "two-newlines": `${LONG}\n\n`,
      short: "t0k\n",
      empty: "",
      "only-newline": "\n",
      spaced: "my token\n",
    })) {
      writeFileSync(join(dir, name), text);
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const build = (argv: string[], env: Record<string, string> = {}) =>
    buildConfig(parseArgs(argv.map((arg) => arg.replace("$DIR", dir)), args), env, "/srv", 1024 ** 3);

  const accepted: Array<[argv: string[], env: Record<string, string>, token: string | undefined, warnings: string[]]> = [
    [[], {}, undefined, []],
    [["--auth-token", LONG], {}, LONG, []],
    [[], { CODEX_SERVER_AUTH_TOKEN: LONG }, LONG, []],
    [["--auth-token", LONG], { CODEX_SERVER_AUTH_TOKEN: "other-token-from-env" }, LONG, []],
    [["--auth-token", "~All.visible-ASCII_/+=!#$%&'*(){}[]:;<>?@^`|\\"], {}, "~All.visible-ASCII_/+=!#$%&'*(){}[]:;<>?@^`|\\", []],
    [["--auth-token", "x"], {}, "x", [SHORT_TOKEN_WARNING]],
    [[], { CODEX_SERVER_AUTH_TOKEN: "fifteen-chars-x" }, "fifteen-chars-x", [SHORT_TOKEN_WARNING]],
    [["--auth-token-file", "$DIR/plain"], {}, LONG, []],
    [["--auth-token-file", "$DIR/newline"], {}, LONG, []],
    [["--auth-token-file", "$DIR/crlf"], {}, LONG, []],
    [["--auth-token-file", "$DIR/short"], {}, "t0k", [SHORT_TOKEN_WARNING]],
    [[], { CODEX_SERVER_AUTH_TOKEN_FILE: "$DIR/newline" }, LONG, []],
    [["--auth-token-file", "$DIR/newline"], { CODEX_SERVER_AUTH_TOKEN_FILE: "$DIR/missing" }, LONG, []],
  ];
  for (const [argv, env, token, warnings] of accepted) {
    test(`${JSON.stringify(argv)} ${JSON.stringify(env)} -> ${token === undefined ? "no token" : "the token"}, warnings ${JSON.stringify(warnings)}`, () => {
      const resolved = Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value.replace("$DIR", dir)]));
      const built = build(argv, { ...resolved, PATH: "/bin" });
      expect(built.config.authToken).toBe(token as string);
      expect(built.warnings).toEqual(warnings);
      expect(built.config.codexEnv).toEqual({ PATH: "/bin" });
    });
  }

  const refused: Array<[argv: string[], env: Record<string, string>, message: string]> = [
    [["--auth-token", ""], {}, "--auth-token is empty: set a token, or none to run without one"],
    [["--auth-token"], {}, "--auth-token is empty: set a token, or none to run without one"],
    [[], { CODEX_SERVER_AUTH_TOKEN: "" }, "CODEX_SERVER_AUTH_TOKEN is empty: set a token, or none to run without one"],
    [["--auth-token", "my token"], {}, "--auth-token has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. `openssl rand -hex 32`"],
    [[], { CODEX_SERVER_AUTH_TOKEN: "my token" }, "CODEX_SERVER_AUTH_TOKEN has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. `openssl rand -hex 32`"],
    [[], { CODEX_SERVER_AUTH_TOKEN: "tab\tinside-the-token" }, "CODEX_SERVER_AUTH_TOKEN has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. `openssl rand -hex 32`"],
    [[], { CODEX_SERVER_AUTH_TOKEN: "0123456789abcdef\n" }, "CODEX_SERVER_AUTH_TOKEN has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. `openssl rand -hex 32`"],
    [[], { CODEX_SERVER_AUTH_TOKEN: "ünïcode-token-0123" }, "CODEX_SERVER_AUTH_TOKEN has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. `openssl rand -hex 32`"],
    [[], { CODEX_SERVER_AUTH_TOKEN: "del\u007f-in-the-token" }, "CODEX_SERVER_AUTH_TOKEN has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. `openssl rand -hex 32`"],
    [["--auth-token-file", "$DIR/empty"], {}, "the token in --auth-token-file $DIR/empty is empty: set a token, or none to run without one"],
    [["--auth-token-file", "$DIR/only-newline"], {}, "the token in --auth-token-file $DIR/only-newline is empty: set a token, or none to run without one"],
    [["--auth-token-file", "$DIR/two-newlines"], {}, "the token in --auth-token-file $DIR/two-newlines has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. `openssl rand -hex 32`"],
    [["--auth-token-file", "$DIR/spaced"], {}, "the token in --auth-token-file $DIR/spaced has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. `openssl rand -hex 32`"],
    [["--auth-token-file", "$DIR/missing"], {}, "cannot read --auth-token-file $DIR/missing: ENOENT: no such file or directory"],
    [[], { CODEX_SERVER_AUTH_TOKEN_FILE: "$DIR" }, "cannot read CODEX_SERVER_AUTH_TOKEN_FILE $DIR: EISDIR: illegal operation on a directory"],
    [["--auth-token-file", ""], {}, "--auth-token-file is empty: expected the path of a file holding the token"],
    [["--auth-token", LONG, "--auth-token-file", "$DIR/plain"], {}, "--auth-token and --auth-token-file are both set: give the token one way"],
    [["--auth-token-file", "$DIR/plain"], { CODEX_SERVER_AUTH_TOKEN: LONG }, "CODEX_SERVER_AUTH_TOKEN and --auth-token-file are both set: give the token one way"],
    [[], { CODEX_SERVER_AUTH_TOKEN: LONG, CODEX_SERVER_AUTH_TOKEN_FILE: "$DIR/plain" }, "CODEX_SERVER_AUTH_TOKEN and CODEX_SERVER_AUTH_TOKEN_FILE are both set: give the token one way"],
    [["--auth-token", LONG], { CODEX_SERVER_AUTH_TOKEN_FILE: "$DIR/plain" }, "--auth-token and CODEX_SERVER_AUTH_TOKEN_FILE are both set: give the token one way"],
  ];
  for (const [argv, env, message] of refused) {
    test(`${JSON.stringify(argv)} ${JSON.stringify(env)} is refused: ${message}`, () => {
      const resolved = Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value.replace("$DIR", dir)]));
      expect(() => build(argv, resolved)).toThrow(new ConfigError(message.replace("$DIR", dir)));
    });
  }
});

describe("banner", () => {
  const LOGGED_IN = { state: "ok", detail: "an API key is set (OPENAI_API_KEY)" } as const;
  const exec = { engine: "exec", appServers: 1, approvalPolicy: "never", allowedHosts: [] as string[], webhookUrl: undefined, webhookAllowedHosts: [] as string[] } as const;
  const local = { host: "::1", authToken: undefined, webConsole: true, ...exec };

  test("boxes the address, the endpoints, the mode and auth", () => {
    const text = banner("http://[::1]:8081", "codex-cli 0.163.0", { ...local, bypassApprovalsAndSandbox: false }, LOGGED_IN);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^╭─+╮$/);
    expect(lines.at(-1)).toMatch(/^╰─+╯$/);
    for (const line of lines.slice(1, -1)) {
      expect(line).toMatch(/^│ .* │$/);
      expect(line.length).toBe(lines[0]?.length as number);
    }
    expect(text).toContain("│  Server listening on: http://[::1]:8081 ");
    expect(text).toContain("GET    /                   web console");
    expect(text).toContain("GET    /health ");
    expect(text).toContain("POST   /messages ");
    expect(text).toContain("GET    /runs/{id}/events ");
    expect(text).toContain("DELETE /runs/{id} ");
    expect(text).toContain("GET    /threads ");
    expect(text).toContain("PATCH  /threads/{id} ");
    expect(text).toContain("DELETE /threads/{id} ");
    expect(text).toContain("POST   /threads/{id}/fork ");
    expect(text).toContain("codex-cli 0.163.0");
    expect(text).toContain("Engine: exec (one codex exec process per turn)");
    expect(text).toContain("Mode: bypass OFF (codex's own sandbox, approvals never)");
    expect(text).toContain("Auth: none");
    expect(text).not.toContain("WARNING");
  });

  test("says when approvals and sandbox are bypassed, and when a token is required", () => {
    const text = banner("http://0.0.0.0:8081", "codex-cli 0.163.0", { host: "0.0.0.0", authToken: "t", bypassApprovalsAndSandbox: true, webConsole: false, ...exec }, LOGGED_IN);
    expect(text).not.toContain("web console");
    expect(text).toContain("Mode: bypass ON (sandbox danger-full-access, approvals never)");
    expect(text).toContain("Auth: bearer token required");
    expect(text).not.toContain("WARNING");
  });

  test("warns loudly when anyone who reaches the port can run commands", () => {
    const text = banner("http://0.0.0.0:8081", "codex-cli 0.163.0", { host: "0.0.0.0", authToken: undefined, bypassApprovalsAndSandbox: true, webConsole: true, ...exec }, LOGGED_IN);
    expect(text).toContain(EXPOSED_WARNING);
  });

  test("names the app-server engine, its processes and the approval policy", () => {
    const config = { ...local, bypassApprovalsAndSandbox: false, engine: "app-server", appServers: 2, approvalPolicy: "on-request" } as const;
    const text = banner("http://[::1]:8081", "codex-cli 0.163.0", config, LOGGED_IN);
    expect(text).toContain("Engine: app-server (2 codex app-server processes)");
    expect(text).toContain("Mode: bypass OFF (codex's own sandbox, approvals on-request: answer with user_confirm)");
    expect(banner("http://[::1]:8081", "codex-cli 0.163.0", { ...config, appServers: 1 }, LOGGED_IN)).toContain("Engine: app-server (1 codex app-server process)");
  });

  test("says whether codex can authenticate; when it cannot, last, as a warning with what to do", () => {
    const lines = (login: Parameters<typeof banner>[3]) =>
      banner("http://[::1]:8081", "codex-cli 0.163.0", { ...local, bypassApprovalsAndSandbox: false }, login)
        .split("\n")
        .map((line) => line.replace(/^│ {2}| +│$/g, ""));
    expect(lines(LOGGED_IN).slice(-3)).toEqual(["Hosts: loopback addresses, localhost", "Codex login: ok", expect.stringMatching(/^╰─+╯$/)]);
    expect(lines({ state: "unknown", detail: "`codex login status` did not answer within 3 s" }).at(-2)).toBe("Codex login: unknown (see the log)");
    const detail = "codex is not logged in (CODEX_HOME /srv/.codex) and no API key is set: run `codex login` with that CODEX_HOME, or set OPENAI_API_KEY";
    expect(lines({ state: "missing", detail }).slice(-4)).toEqual([
      "Hosts: loopback addresses, localhost",
      "",
      `WARNING: codex cannot authenticate: ${detail}`,
      expect.stringMatching(/^╰─+╯$/),
    ]);
  });

  test.each([
    ["https://hooks.example.com/codex?token=t", [], "Webhooks: to hooks.example.com"],
    ["http://127.0.0.1:9000/h", ["127.0.0.1", ".corp.example"], "Webhooks: to 127.0.0.1:9000, and a request's webhook_url on 127.0.0.1, .corp.example"],
    [undefined, ["hooks.example.com"], "Webhooks: a request's webhook_url on hooks.example.com"],
  ] as Array<[string | undefined, string[], string]>)("webhooks to %p, allowed hosts %p: %p, never the URL's path or query", (webhookUrl, webhookAllowedHosts, line) => {
    const text = banner("http://x:1", "codex-cli 0.163.0", { ...local, webhookUrl, webhookAllowedHosts, bypassApprovalsAndSandbox: false }, LOGGED_IN);
    expect(text).toContain(`│  ${line} `);
    expect(text).not.toContain("token");
  });

  test("no webhooks, no line", () => {
    expect(banner("http://x:1", "codex-cli 0.163.0", { ...local, bypassApprovalsAndSandbox: false }, LOGGED_IN)).not.toContain("Webhooks");
  });

  test.each([
    ["127.0.0.1", [], "Hosts: loopback addresses, localhost"],
    ["::1", ["codex.example.com"], "Hosts: loopback addresses, localhost, codex.example.com"],
    ["0.0.0.0", [], "Browsers: by IP address or localhost (names: --allowed-hosts)"],
    ["::", ["codex.example.com", ".corp.example"], "Browsers: by IP address or localhost, or as codex.example.com, .corp.example"],
  ] as Array<[string, string[], string]>)("bound to %p with allowed hosts %p, it says %p", (host, allowedHosts, line) => {
    const text = banner("http://x:1", "codex-cli 0.163.0", { ...local, host, allowedHosts, bypassApprovalsAndSandbox: false }, LOGGED_IN);
    expect(text).toContain(`│  ${line} `);
  });
});

describe("parseLogFormat", () => {
  test.each([
    ["text", "text"],
    ["json", "json"],
    ["JSON", "json"],
  ])("%p -> %p", (text, format) => {
    expect(parseLogFormat(text)).toBe(format as never);
  });

  test("anything else is an error", () => {
    expect(() => parseLogFormat("xml")).toThrow(new ConfigError('invalid value "xml" for --log-format: expected text or json'));
  });
});

describe("codex config flags", () => {
  test.each([
    [["--codex-config", "a=1", "-a", "x:1", "--codex-config=b.c=\"two\""], ["a=1", 'b.c="two"']],
    [["--codex-config"], []],
    [["--other", "x"], []],
  ])("collectRepeated %p -> %p", (argv, values) => {
    expect(collectRepeated(argv, "codex-config")).toEqual(values);
  });

  test.each(['model_reasoning_effort="low"', "features.web_search=true", "sandbox_workspace_write.network_access=false"])(
    "parseCodexOverride accepts %p",
    (text) => {
      expect(parseCodexOverride(text)).toBe(text);
    },
  );

  test.each(["noequals", "=1", "a..b=1", "a=", "a b=1"])("parseCodexOverride refuses %p", (text) => {
    expect(() => parseCodexOverride(text)).toThrow(
      new ConfigError(`invalid value "${text}" for --codex-config: expected KEY=VALUE, e.g. model_reasoning_effort="low"`),
    );
  });

  test("lean is on by default, --no-lean turns it off; overrides arrive in order", () => {
    const parse = (argv: string[]) => buildConfig(parseArgs(argv, args), {}, "/srv", 1024 ** 3, collectRepeated(argv, "codex-config")).config;
    expect(parse([])).toMatchObject({ leanCodex: true, codexConfigOverrides: [] });
    expect(parse(["--no-lean"]).leanCodex).toBe(false);
    expect(parse(["--codex-config", "a=1", "--codex-config", "b=2"]).codexConfigOverrides).toEqual(["a=1", "b=2"]);
    expect(() => parse(["--codex-config", "bad"])).toThrow(ConfigError);
  });

  test("the web console is on by default; --no-console and --console false turn it off", () => {
    const parse = (argv: string[]) => buildConfig(parseArgs(argv, args), {}, "/srv", 1024 ** 3, []).config.webConsole;
    expect(parse([])).toBe(true);
    expect(parse(["--no-console"])).toBe(false);
    expect(parse(["--console=false"])).toBe(false);
  });
});

describe("isExposed", () => {
  test.each([
    ["0.0.0.0", true, undefined, true],
    ["192.168.1.5", true, undefined, true],
    ["::", true, undefined, true],
    ["0.0.0.0", true, "token", false],
    ["0.0.0.0", false, undefined, false],
    ["127.0.0.1", true, undefined, false],
    ["::1", true, undefined, false],
    ["localhost", true, undefined, false],
  ])("host %p, bypass %p, token %p -> %p", (host, bypass, token, exposed) => {
    expect(isExposed({ host, bypassApprovalsAndSandbox: bypass, authToken: token })).toBe(exposed);
  });

  test("a tokens file asks for tokens as --auth-token does: not exposed", () => {
    expect(isExposed({ host: "0.0.0.0", bypassApprovalsAndSandbox: true, authToken: undefined, tokensFile: { path: "/etc/t.json", tenants: [] } })).toBe(false);
  });
});

describe("limits and access flags", () => {
  test.each([
    ["1", 1],
    ["81", 81],
    [" 7 ", 7],
  ])("parsePositiveInteger %p -> %p", (text, value) => {
    expect(parsePositiveInteger("n", text)).toBe(value);
  });

  test.each(["0", "-1", "1.5", "x", "", "256"])("parsePositiveInteger %p (max 255) is rejected", (text) => {
    expect(() => parsePositiveInteger("idle-timeout", text, 255)).toThrow(
      new ConfigError(`invalid value "${text}" for --idle-timeout: expected a whole number from 1 to 255`),
    );
  });

  test.each([
    ["30", 30_000],
    ["0.5", 500],
    ["600", 600_000],
  ])("parseSeconds %p -> %p ms", (text, ms) => {
    expect(parseSeconds("turn-timeout", text)).toBe(ms);
  });

  test.each(["0", "-3", "1e3", "soon", ""])("parseSeconds %p is rejected", (text) => {
    expect(() => parseSeconds("turn-timeout", text)).toThrow(ConfigError);
  });

  test.each([
    [[], 600_000],
    [["--stall-timeout", "90"], 90_000],
    [["--stall-timeout", "2.5"], 2_500],
    [["--stall-timeout", "0"], undefined],
    [["--stall-timeout=0.0"], undefined],
  ] as Array<[string[], number | undefined]>)("%p -> stall timeout %p ms", (argv, ms) => {
    expect(buildConfig(parseArgs(argv, args), {}, "/srv", 1024 ** 3).config.stallTimeoutMs).toBe(ms);
  });

  test.each(["-1", "soon", "1e3"])("--stall-timeout %p is refused", (text) => {
    expect(() => buildConfig(parseArgs(["--stall-timeout", text], args), {}, "/srv", 1024 ** 3)).toThrow(
      new ConfigError(`invalid value "${text}" for --stall-timeout: expected a positive number of seconds`),
    );
  });

  test("parseOrigins keeps exact origins", () => {
    expect(parseOrigins("https://app.example.com, http://localhost:3000/,HTTP://UPPER.example")).toEqual([
      "https://app.example.com",
      "http://localhost:3000",
      "http://upper.example",
    ]);
  });

  test.each(["*", "app.example.com", "https://app.example.com/path", "null", "file:///tmp/x"])("parseOrigins %p is rejected", (text) => {
    expect(() => parseOrigins(text)).toThrow(ConfigError);
  });

  test("parseAllowedHosts keeps names and .domains, in lower case", () => {
    expect(parseAllowedHosts(" codex.example.com, .Corp.Example ,,build-1.lan")).toEqual(["codex.example.com", ".corp.example", "build-1.lan"]);
    expect(parseAllowedHosts("")).toEqual([]);
  });

  test.each(["*", "codex.example.com:8081", "https://codex.example.com", "[::1]", "bad_name", "a..b", "..example.com", "."])(
    "parseAllowedHosts %p is rejected",
    (text) => {
      expect(() => parseAllowedHosts(text)).toThrow(
        new ConfigError(
          `invalid host "${text}" for --allowed-hosts: expected a host name, e.g. codex.example.com, or .example.com for it and every name under it`,
        ),
      );
    },
  );

  test("parseAllowedHosts refuses a whole top-level domain", () => {
    expect(() => parseAllowedHosts(".com")).toThrow(
      new ConfigError('invalid host ".com" for --allowed-hosts: anyone can register a name under com; list a domain you control, e.g. .example.com'),
    );
  });

  test("parseDirectory resolves symlinks; a missing one is an error", () => {
    expect(parseDirectory("workspace-root", "/tmp/../tmp")).toBe(realpathSync("/tmp"));
    expect(() => parseDirectory("workspace-root", "/no/such")).toThrow(
      new ConfigError('invalid value "/no/such" for --workspace-root: not an existing directory'),
    );
  });

  test.each([
    [24 * 1024 ** 3, 81],
    [2 * 1024 ** 3, 6],
    [200 * 1024 ** 2, 1],
  ])("with %p bytes of memory, at most %p turns by default", (memory, turns) => {
    expect(defaultMaxConcurrentTurns(memory)).toBe(turns);
  });
});

describe("engine and approval flags", () => {
  const build = (argv: string[]) => buildConfig(parseArgs(normalizeOptionalBoolean(argv, BYPASS), args), {}, "/srv", 1024 ** 3).config;

  const accepted: Array<[argv: string[], expected: Record<string, unknown>]> = [
    [["--engine", "app-server"], { engine: "app-server", appServers: 1, approvalPolicy: "never" }],
    [["--engine=APP-SERVER", "--app-servers", "3"], { engine: "app-server", appServers: 3 }],
    [["--engine", "exec"], { engine: "exec" }],
    [["--engine", "app-server", `--${BYPASS}`, "false", "--approval-policy", "on-request"], { approvalPolicy: "on-request", bypassApprovalsAndSandbox: false }],
    [["--engine", "app-server", `--${BYPASS}=false`, "--approval-policy", "untrusted", "--approval-timeout", "2.5"], { approvalPolicy: "untrusted", approvalTimeoutMs: 2_500 }],
    [["--engine", "app-server", "--approval-policy", "never"], { approvalPolicy: "never", bypassApprovalsAndSandbox: true }],
  ];
  for (const [argv, expected] of accepted) {
    test(`${argv.join(" ")} -> ${JSON.stringify(expected)}`, () => {
      expect(build(argv)).toMatchObject(expected);
    });
  }

  const refused: Array<[argv: string[], message: string]> = [
    [["--engine", "sdk"], 'invalid value "sdk" for --engine: expected exec or app-server'],
    [["--engine", "app-server", "--app-servers", "0"], 'invalid value "0" for --app-servers: expected a whole number from 1 to 64'],
    [["--engine", "app-server", "--app-servers", "65"], 'invalid value "65" for --app-servers: expected a whole number from 1 to 64'],
    [["--approval-policy", "sometimes"], 'invalid value "sometimes" for --approval-policy: expected never, on-request or untrusted'],
    [["--engine", "app-server", `--${BYPASS}=false`, "--approval-policy", "on-failure"], "--approval-policy on-failure: codex 0.163's app-server no longer accepts it; use on-request or untrusted"],
    [[`--${BYPASS}=false`, "--approval-policy", "on-request"], "--approval-policy on-request needs --engine app-server: codex exec cannot ask anyone"],
    [["--engine", "app-server", "--approval-policy", "on-request"], `--approval-policy on-request needs --${BYPASS} false: bypass means codex never asks`],
    [["--approval-timeout", "0"], 'invalid value "0" for --approval-timeout: expected a positive number of seconds'],
    [["--run-retention-bytes", "0"], 'invalid value "0" for --run-retention-bytes: expected a positive number of bytes, e.g. 1048576 or 1m'],
  ];
  for (const [argv, message] of refused) {
    test(`${argv.join(" ")} is refused`, () => {
      expect(() => build(argv)).toThrow(new ConfigError(message));
    });
  }
});

describe("webhook flags", () => {
  const SECRET = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
  const build = (argv: string[], env: Record<string, string> = {}) => buildConfig(parseArgs(argv, args), env, "/srv", 1024 ** 3);
  const webhooks = (result: ReturnType<typeof build>) => {
    const { webhookUrl, webhookSecret, webhookAllowedHosts } = result.config;
    return { webhookUrl, webhookSecret, webhookAllowedHosts, warnings: result.warnings };
  };

  test.each([
    ["flags", ["--webhook-url", "https://hooks.example.com/codex?t=1", "--webhook-secret", SECRET, "--webhook-allowed-hosts", "127.0.0.1,.corp.example"], {}],
    [
      "the environment",
      [],
      { CODEX_SERVER_WEBHOOK_URL: "https://hooks.example.com/codex?t=1", CODEX_SERVER_WEBHOOK_SECRET: SECRET, CODEX_SERVER_WEBHOOK_ALLOWED_HOSTS: "127.0.0.1, .corp.example" },
    ],
  ] as Array<[string, string[], Record<string, string>]>)("from %s", (_, argv, env) => {
    expect(webhooks(build(argv, env))).toEqual({
      webhookUrl: "https://hooks.example.com/codex?t=1",
      webhookSecret: SECRET,
      webhookAllowedHosts: ["127.0.0.1", ".corp.example"],
      warnings: [],
    });
  });

  test("neither the secret nor the URL reaches codex's environment", () => {
    const { config } = build([], { CODEX_SERVER_WEBHOOK_URL: "https://h.example/x", CODEX_SERVER_WEBHOOK_SECRET: SECRET, CODEX_SERVER_WEBHOOK_ALLOWED_HOSTS: "h.example", PATH: "/bin" });
    expect(config.codexEnv).toEqual({ CODEX_SERVER_WEBHOOK_ALLOWED_HOSTS: "h.example", PATH: "/bin" });
  });

  test("flags win over the environment; an empty value counts as unset", () => {
    const env = { CODEX_SERVER_WEBHOOK_URL: "https://env.example/x", CODEX_SERVER_WEBHOOK_SECRET: SECRET };
    expect(build(["--webhook-url", "https://flag.example/y"], env).config.webhookUrl).toBe("https://flag.example/y");
    expect(webhooks(build(["--webhook-url="], env))).toMatchObject({ webhookUrl: undefined, warnings: [WEBHOOK_SECRET_ONLY_WARNING] });
  });

  test("a secret alone: a warning, since no webhook is sent", () => {
    expect(build(["--webhook-secret", SECRET]).warnings).toEqual([WEBHOOK_SECRET_ONLY_WARNING]);
  });

  const NEEDS_SECRET = 'needs a secret to sign the webhooks: set CODEX_SERVER_WEBHOOK_SECRET (or --webhook-secret), e.g. from `echo "whsec_$(openssl rand -base64 32)"`';
  test.each([
    [["--webhook-url", "https://h.example/x"], {}, `--webhook-url ${NEEDS_SECRET}`],
    [[], { CODEX_SERVER_WEBHOOK_URL: "https://h.example/x" }, `CODEX_SERVER_WEBHOOK_URL ${NEEDS_SECRET}`],
    [["--webhook-allowed-hosts", "h.example"], {}, `--webhook-allowed-hosts ${NEEDS_SECRET}`],
    [["--webhook-url", "ftp://h.example/x?token=abc", "--webhook-secret", SECRET], {}, "invalid value for --webhook-url: expected an http:// or https:// URL, e.g. https://hooks.example.com/codex"],
    [["--webhook-url", "hooks.example.com", "--webhook-secret", SECRET], {}, "invalid value for --webhook-url: expected an http:// or https:// URL, e.g. https://hooks.example.com/codex"],
    [["--webhook-secret", "s3cret-not-whsec"], {}, '--webhook-secret must start with whsec_, e.g. from `echo "whsec_$(openssl rand -base64 32)"`'],
    [[], { CODEX_SERVER_WEBHOOK_SECRET: "whsec_c2hvcnQ=" }, 'CODEX_SERVER_WEBHOOK_SECRET must hold 24 to 64 bytes of key, not 5, e.g. from `echo "whsec_$(openssl rand -base64 32)"`'],
    [["--webhook-allowed-hosts", ".com", "--webhook-secret", SECRET], {}, 'invalid host ".com" for --webhook-allowed-hosts: anyone can register a name under com; list a domain you control, e.g. .example.com'],
    [["--webhook-allowed-hosts", "http://h.example", "--webhook-secret", SECRET], {}, 'invalid host "http://h.example" for --webhook-allowed-hosts: expected a host name, e.g. codex.example.com, or .example.com for it and every name under it'],
  ] as Array<[string[], Record<string, string>, string]>)("%p %p is refused: %s", (argv, env, message) => {
    expect(() => build(argv, env)).toThrow(new ConfigError(message));
  });

  test.each([
    ["127.0.0.1", ["127.0.0.1"]],
    ["[::1], ::1", ["::1", "::1"]],
    ["0:0:0:0:0:0:0:1", ["::1"]],
    ["Hooks.Example.com,.corp.example", ["hooks.example.com", ".corp.example"]],
    ["", []],
  ])("parseWebhookAllowedHosts %p -> %p", (text, hosts) => {
    expect(parseWebhookAllowedHosts(text)).toEqual(hosts);
  });
});

describe("tokens file and state dir", () => {
  const ALICE = "alice-token-0123456789";
  let dir: string;
  beforeAll(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), "tokens-")));
    writeFileSync(join(dir, "ok.json"), JSON.stringify({ tokens: [{ name: "alice", token: ALICE }, { name: "root", token: "root", admin: true }] }));
    writeFileSync(join(dir, "broken.json"), `{"tokens":[{"name":"alice","token":"${ALICE}"`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const build = (argv: string[], env: Record<string, string> = {}) =>
    buildConfig(parseArgs(argv.map((arg) => arg.replace("$DIR", dir)), args), Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value.replace("$DIR", dir)])), dir, 1024 ** 3);
  const tenants = [
    { tenant: { name: "alice", admin: false }, token: ALICE },
    { tenant: { name: "root", admin: true }, token: "root" },
  ];
  const short = `tokens file $DIR/ok.json: the token of root ${SHORT_TENANT_TOKEN_WARNING}`;

  const accepted: Array<[argv: string[], env: Record<string, string>, tokensFile: unknown, stateDir: string, warnings: string[]]> = [
    [[], { CODEX_HOME: "/var/codex" }, undefined, "/var/codex/codex-http-server", []],
    [[], { HOME: "/home/u" }, undefined, "/home/u/.codex/codex-http-server", []],
    [["--tokens-file", "$DIR/ok.json"], { CODEX_HOME: "/var/codex" }, { path: "$DIR/ok.json", tenants }, "/var/codex/codex-http-server", [short]],
    [["--tokens-file", "ok.json", "--state-dir", "state"], {}, { path: "$DIR/ok.json", tenants }, "$DIR/state", [short]],
    [[], { CODEX_SERVER_TOKENS_FILE: "$DIR/ok.json", CODEX_SERVER_STATE_DIR: "/srv/state" }, { path: "$DIR/ok.json", tenants }, "/srv/state", [short]],
    [["--state-dir", "/a"], { CODEX_SERVER_STATE_DIR: "/b" }, undefined, "/a", []],
  ];
  for (const [argv, env, tokensFile, stateDir, warnings] of accepted) {
    test(`${JSON.stringify(argv)} ${JSON.stringify(env)} -> state dir ${stateDir}`, () => {
      const built = build(argv, env);
      expect(built.config.tokensFile).toEqual(JSON.parse(JSON.stringify(tokensFile ?? null).replaceAll("$DIR", dir)) ?? undefined);
      expect(built.config.stateDir).toBe(stateDir.replace("$DIR", dir));
      expect(built.warnings).toEqual(warnings.map((warning) => warning.replace("$DIR", dir)));
      expect(built.config.authToken).toBeUndefined();
      // Where the tokens lie is the server's business, not codex's.
      expect(Object.keys(built.config.codexEnv).filter((key) => key.startsWith("CODEX_SERVER"))).toEqual([]);
    });
  }

  const refused: Array<[argv: string[], env: Record<string, string>, message: string]> = [
    [["--tokens-file", "$DIR/ok.json", "--auth-token", ALICE], {}, "--tokens-file and --auth-token are both set: with a tokens file, every token is in it"],
    [["--tokens-file", "$DIR/ok.json"], { CODEX_SERVER_AUTH_TOKEN: ALICE }, "--tokens-file and CODEX_SERVER_AUTH_TOKEN are both set: with a tokens file, every token is in it"],
    [["--auth-token-file", "$DIR/ok.json"], { CODEX_SERVER_TOKENS_FILE: "$DIR/ok.json" }, "CODEX_SERVER_TOKENS_FILE and --auth-token-file are both set: with a tokens file, every token is in it"],
    [["--tokens-file", ""], {}, "--tokens-file is empty: expected the path of a tokens file"],
    [["--tokens-file", "$DIR/missing.json"], {}, "cannot read the tokens file $DIR/missing.json: ENOENT: no such file or directory"],
    [["--tokens-file", "$DIR/broken.json"], {}, "tokens file $DIR/broken.json is not valid JSON"],
  ];
  for (const [argv, env, message] of refused) {
    test(`${JSON.stringify(argv)} ${JSON.stringify(env)} is refused: ${message}`, () => {
      expect(() => build(argv, env)).toThrow(new ConfigError(message.replaceAll("$DIR", dir)));
    });
  }
});

describe("replica flags", () => {
  const MACHINE = { hostname: "web-1.example", pid: 42 };
  const build = (argv: string[], env: Record<string, string> = {}) => buildConfig(parseArgs(argv, args), env, "/srv", 1024 ** 3, [], MACHINE).config;
  const cluster = (config: ReturnType<typeof build>) => {
    const { redisUrl, replicaId, clusterMaxTurns } = config;
    return { redisUrl, replicaId, clusterMaxTurns };
  };

  test.each([
    ["no Redis: one process, nothing shared", [], {}, { redisUrl: undefined, replicaId: undefined, clusterMaxTurns: undefined }],
    ["--redis-url: the id from host name and pid", ["--redis-url", "redis://r:6379"], {}, { redisUrl: "redis://r:6379", replicaId: "web-1.example-42", clusterMaxTurns: undefined }],
    ["REDIS_URL and CODEX_SERVER_REPLICA_ID", [], { REDIS_URL: "rediss://:pw@r:6380/2", CODEX_SERVER_REPLICA_ID: "codex-0" }, { redisUrl: "rediss://:pw@r:6380/2", replicaId: "codex-0", clusterMaxTurns: undefined }],
    ["flags win over the environment", ["--redis-url", "redis://flag", "--replica-id", "b", "--cluster-max-turns", "12"], { REDIS_URL: "redis://env", CODEX_SERVER_REPLICA_ID: "a" }, { redisUrl: "redis://flag", replicaId: "b", clusterMaxTurns: 12 }],
  ] as Array<[string, string[], Record<string, string>, unknown]>)("%s", (_, argv, env, expected) => {
    expect(cluster(build(argv, env))).toEqual(expected as ReturnType<typeof cluster>);
  });

  test("a host name with odd characters still makes a valid id", () => {
    expect(buildConfig(parseArgs(["--redis-url", "redis://r"], args), {}, "/srv", 1024 ** 3, [], { hostname: "my host", pid: 7 }).config.replicaId).toBe("my-host-7");
  });

  test("REDIS_URL, which may hold a password, does not reach codex's environment", () => {
    expect(build([], { REDIS_URL: "redis://:secret@r", PATH: "/bin" }).codexEnv).toEqual({ PATH: "/bin" });
  });

  test.each([
    [["--replica-id", "a"], {}, "--replica-id needs --redis-url: a replica alone has no others to be told from"],
    [[], { CODEX_SERVER_REPLICA_ID: "a" }, "--replica-id needs --redis-url: a replica alone has no others to be told from"],
    [["--cluster-max-turns", "4"], {}, "--cluster-max-turns needs --redis-url; alone, --max-concurrent-turns is the limit"],
    [["--redis-url", "r:6379"], {}, "invalid --redis-url: r: is not a Redis URL scheme (redis://, rediss://)"],
    [["--redis-url", "not a url"], {}, "invalid --redis-url: expected redis://[user:password@]host[:port][/db], rediss:// for TLS"],
    [["--redis-url", "http://r:6379"], {}, "invalid --redis-url: http: is not a Redis URL scheme (redis://, rediss://)"],
    [["--redis-url", "redis://r", "--replica-id", "a b"], {}, 'invalid --replica-id "a b": letters, digits and . _ : - only, at most 128, starting with a letter or digit'],
    [["--redis-url", "redis://r", "--cluster-max-turns", "0"], {}, 'invalid value "0" for --cluster-max-turns: expected a whole number from 1 to 9007199254740991'],
  ] as Array<[string[], Record<string, string>, string]>)("%p %p is refused: %s", (argv, env, message) => {
    expect(() => build(argv, env)).toThrow(new ConfigError(message));
  });

  test("the banner names the replica, the Redis without its password, the store's state and the cluster's limit", () => {
    const config = {
      host: "0.0.0.0",
      authToken: "t",
      bypassApprovalsAndSandbox: true,
      webConsole: true,
      engine: "exec",
      appServers: 1,
      approvalPolicy: "never",
      allowedHosts: [] as string[],
      webhookUrl: undefined,
      webhookAllowedHosts: [] as string[],
      redisUrl: "redis://user:s3cret@redis:6379/0",
      replicaId: "codex-0",
      clusterMaxTurns: 8,
    } as const;
    const login = { state: "ok", detail: "" } as const;
    const up = banner("http://0.0.0.0:8081", "codex-cli 0.163.0", config, login, "up");
    expect(up).toContain("Replicas: codex-0 via redis://user:***@redis:6379/0 (connected), at most 8 turns across them");
    expect(up).not.toContain("s3cret");
    expect(banner("http://0.0.0.0:8081", "codex-cli 0.163.0", { ...config, clusterMaxTurns: undefined }, login, "down")).toContain(
      "Replicas: codex-0 via redis://user:***@redis:6379/0 (UNREACHABLE: new turns get 503 until it answers)",
    );
  });
});
