import { describe, expect, test } from "bun:test";
import { parseArgs } from "citty";
import {
  args,
  banner,
  buildConfig,
  ConfigError,
  normalizeOptionalBoolean,
  parseAddress,
  parseBoolean,
  parseByteSize,
  parseLogLevel,
} from "../src/cli";

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
  ])("%p -> %p", (text, bytes) => {
    expect(parseByteSize("max-body-bytes", text)).toBe(bytes);
  });

  test.each(["0", "-1", "1.5m", "1g", "", "lots", "99999999999999999999"])("%p is rejected", (text) => {
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
    buildConfig(parseArgs(normalizeOptionalBoolean(argv, BYPASS), args), env, "/srv");

  test("defaults", () => {
    const { config, warnings } = build([], { PATH: "/bin" });
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      host: "0.0.0.0",
      port: 8081,
      bypassApprovalsAndSandbox: true,
      maxBodyBytes: 1048576,
      logLevel: "info",
      defaultWorkDir: "/srv",
      codexPath: undefined,
      codexEnv: { PATH: "/bin" },
    });
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

describe("banner", () => {
  test("boxes the address, the endpoints and the mode", () => {
    const text = banner("http://[::1]:8081", "codex-cli 0.163.0", { bypassApprovalsAndSandbox: false });
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^╭─+╮$/);
    expect(lines.at(-1)).toMatch(/^╰─+╯$/);
    for (const line of lines.slice(1, -1)) {
      expect(line).toMatch(/^│ .* │$/);
      expect(line.length).toBe(lines[0]?.length as number);
    }
    expect(text).toContain("│  Server listening on: http://[::1]:8081 ");
    expect(text).toContain("GET  /health");
    expect(text).toContain("POST /messages");
    expect(text).toContain("codex-cli 0.163.0");
    expect(text).toContain("Mode: bypass OFF");
  });

  test("says when approvals and sandbox are bypassed", () => {
    expect(banner("http://0.0.0.0:8081", "codex-cli 0.163.0", { bypassApprovalsAndSandbox: true })).toContain(
      "Mode: bypass ON (sandbox danger-full-access, approvals never)",
    );
  });
});
