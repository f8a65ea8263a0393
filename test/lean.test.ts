/** The lean profile reaches the real codex, respects the user's config.toml, and --no-lean passes nothing. */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import type { Config } from "../src/config";
import { tomlInline } from "../src/engine/codex-launch";
import { LEAN_OVERRIDES } from "./fixtures/lean-overrides";
import { codexDuringTurn, configOptions } from "./fixtures/codex-argv";
import { readSse } from "./fixtures/sse";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { agentTexts } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

/** The server shims lsb_release for codex only where there is one (engine/lsb-release-shim.ts). */
const hasLsbRelease = Bun.which("lsb_release") !== null;

/**
 * The `--config` values of the codex process that runs one turn, less the server's trust verdict on
 * the work_dir (engine/codex-launch.ts) and the SDK's own `approval_policy`, and its PATH.
 */
async function configOfCodex(server: TestServer): Promise<{ config: string[]; codexPath: string }> {
  const { argv, environ } = await codexDuringTurn(server);
  const config = configOptions(argv);
  expect(config[0]).toBe(`projects=${tomlInline({ [realpathSync(process.cwd())]: { trust_level: "untrusted" } })}`);
  expect(config.at(-1)).toBe('approval_policy="never"');
  return { config: config.slice(1, -1), codexPath: environ.PATH ?? "" };
}

/** The user's own config.toml lines: root keys go first and tables last, as TOML needs. */
type UserToml = { root?: string; tables?: string };

async function withServer(overrides: Partial<Config>, user: UserToml, check: (server: TestServer) => Promise<void>) {
  const server = startTestServer(overrides);
  const path = join(server.home.dir, "config.toml");
  writeFileSync(path, `${user.root ?? ""}\n${readFileSync(path, "utf8")}\n${user.tables ?? ""}`);
  try {
    await check(server);
  } finally {
    await server.close();
  }
}

describe("the lean profile", () => {
  test("is on by default: codex gets every override, and does not sync plugins", () =>
    withServer({}, {}, async (server) => {
      const { config } = await configOfCodex(server);
      for (const override of LEAN_OVERRIDES) expect(config).toContain(override);
      expect(existsSync(join(server.home.dir, ".tmp", "plugins.sync.lock"))).toBe(false);
    }));

  test("turns still work with it: a command runs in the work_dir", () =>
    withServer({}, {}, async (server) => {
      const { frames } = await readSse(await server.send({ type: "user_message", message: "run pwd", work_dir: "/tmp" }));
      expect(agentTexts(frames)).toEqual(["ran: /tmp"]);
    }));

  test("file edits still work: an apply_patch becomes a file_change and a file", () =>
    withServer({}, {}, async (server) => {
      const dir = mkdtempSync(join(tmpdir(), "lean-edit-"));
      try {
        const patch = "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: hello.txt\n+hello from a patch\n*** End Patch\nEOF";
        const { frames } = await readSse(await server.send({ type: "user_message", message: `run ${patch}`, work_dir: dir }));
        const change = frames.find((f) => f.event === "item.completed" && JSON.parse(f.data).item.type === "file_change");
        expect(JSON.parse(change?.data ?? "{}").item).toMatchObject({ changes: [{ path: join(dir, "hello.txt"), kind: "add" }], status: "completed" });
        expect(readFileSync(join(dir, "hello.txt"), "utf8")).toBe("hello from a patch\n");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  test("commands get the login shell's PATH (no shell snapshot needed)", () =>
    withServer({}, {}, async (server) => {
      // The tests' empty HOME gets a profile, as a user's would have.
      writeFileSync(join(server.home.home, ".profile"), 'export PATH="/opt/from-profile:$PATH"\n');
      const login = Bun.spawnSync(["bash", "-lc", "echo $PATH"], { env: { ...process.env, ...server.home.env } }).stdout.toString().trim();
      expect(login).toStartWith("/opt/from-profile:");
      const { frames } = await readSse(await server.send({ type: "user_message", message: "run echo $PATH" }));
      expect(agentTexts(frames)).toEqual([`ran: ${login}`]);
    }));

  test("a key set in config.toml is not overridden", () =>
    withServer({}, { root: "check_for_update_on_startup = true", tables: "[features]\nplugins = true\n[analytics]\nenabled = true" }, async (server) => {
      const { config } = await configOfCodex(server);
      expect(config).toEqual(["features.remote_plugin=false", "features.apps=false", "features.shell_snapshot=false"]);
    }));

  test("--no-lean passes nothing, and codex syncs its plugins as usual", () =>
    withServer({ leanCodex: false }, {}, async (server) => {
      const { config, codexPath } = await configOfCodex(server);
      expect(config).toEqual([]);
      expect(codexPath).not.toContain("codex-http-server-");
      await waitFor("codex's plugin sync", () => existsSync(join(server.home.dir, ".tmp", "plugins.sync.lock")), 5_000);
    }));

  test("--codex-config overrides come last, after the profile", () =>
    withServer({ codexConfigOverrides: ['model_reasoning_effort="low"', "features.plugins=true"] }, {}, async (server) => {
      const { config } = await configOfCodex(server);
      expect(config.slice(-2)).toEqual(['model_reasoning_effort="low"', "features.plugins=true"]);
      expect(config.slice(0, LEAN_OVERRIDES.length)).toEqual(LEAN_OVERRIDES);
    }));
});

describe.if(hasLsbRelease)("the lsb_release shim (this machine has lsb_release)", () => {
  const answer = (path: string, ...args: string[]) => Bun.spawnSync([path, ...args]).stdout.toString();

  test("codex finds it first on its PATH; it answers -a as the real one does", () =>
    withServer({}, {}, async (server) => {
      const { codexPath } = await configOfCodex(server);
      const [shimDir = ""] = codexPath.split(delimiter);
      expect(shimDir).toContain("codex-http-server-");
      const shim = join(shimDir, "lsb_release");
      expect(answer(shim, "-a")).toBe(answer("lsb_release", "-a"));
      expect(answer(shim, "-is")).toBe(answer("lsb_release", "-is"));
    }));

  test("codex names the same OS in its User-Agent as without it", async () => {
    let shimmed = "";
    await withServer({}, {}, async (server) => {
      await readSse(await server.send({ type: "user_message", message: "say hi" }));
      shimmed = server.model.requests.at(-1)?.userAgent ?? "";
    });
    await withServer({ leanCodex: false }, {}, async (server) => {
      await readSse(await server.send({ type: "user_message", message: "say hi" }));
      const os = (userAgent: string) => /\(([^)]*)\)/.exec(userAgent)?.[1];
      expect(os(shimmed)).toBe(os(server.model.requests.at(-1)?.userAgent ?? "") as string);
      expect(os(shimmed)).toMatch(/^\S+ [\d.]+; /);
    });
  });

  test("the agent's commands, which inherit codex's PATH, get the real answers", () =>
    withServer({}, {}, async (server) => {
      const { frames } = await readSse(await server.send({ type: "user_message", message: "sh lsb_release -a 2>/dev/null; lsb_release -is" }));
      expect(agentTexts(frames)).toEqual([`ran: ${(answer("lsb_release", "-a") + answer("lsb_release", "-is")).trim()}`]);
    }));
});
