import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  LEAN_PROFILE,
  leanOverrides,
  readUserCodexConfig,
  userSets,
} from "../src/engine/lean-profile";
import { createLsbReleaseShim } from "../src/engine/lsb-release-shim";
import { LEAN_OVERRIDES } from "./fixtures/lean-overrides";

describe("leanOverrides", () => {
  const cases: Array<[string, Record<string, unknown>, string[]]> = [
    ["an empty config gets the whole profile", {}, LEAN_OVERRIDES],
    ["a key the user set at the root is left alone", { features: { plugins: true } }, LEAN_OVERRIDES.filter((o) => !o.startsWith("features.plugins="))],
    ["so is one set to the same value", { analytics: { enabled: false } }, LEAN_OVERRIDES.filter((o) => !o.startsWith("analytics."))],
    ["profile tables do not count (codex 0.163 no longer reads them)", { profiles: { work: { features: { apps: true } } } }, LEAN_OVERRIDES],
    ["unrelated keys change nothing", { model: "gpt-5", features: { web_search: true } }, LEAN_OVERRIDES],
    ["a scalar where a table is expected changes nothing", { features: "odd" }, LEAN_OVERRIDES],
  ];
  for (const [name, config, expected] of cases) {
    test(name, () => {
      expect(leanOverrides(config)).toEqual(expected);
    });
  }

  test("every key of the profile says why it is there", () => {
    for (const [key, value, why] of LEAN_PROFILE) {
      expect(key).toMatch(/^[a-z_.]+$/);
      expect(value).toBe(false);
      expect(why.length).toBeGreaterThan(10);
    }
  });

  test("userSets follows dotted keys", () => {
    expect(userSets({ a: { b: { c: 1 } } }, "a.b.c")).toBe(true);
    expect(userSets({ a: { b: {} } }, "a.b.c")).toBe(false);
  });
});

describe("readUserCodexConfig", () => {
  const home = mkdtempSync(join(tmpdir(), "lean-home-"));
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  test("reads $CODEX_HOME/config.toml with Bun's TOML parser", () => {
    writeFileSync(join(home, "config.toml"), 'model = "m"\n[features]\nplugins = true\n[analytics]\nenabled = true\n');
    const config = readUserCodexConfig({ CODEX_HOME: home });
    expect(config).toEqual({ model: "m", features: { plugins: true }, analytics: { enabled: true } });
    expect(leanOverrides(config)).toEqual(["features.remote_plugin=false", "features.apps=false", "features.shell_snapshot=false", "check_for_update_on_startup=false"]);
  });

  test("a missing or broken config.toml counts as empty", () => {
    expect(readUserCodexConfig({ CODEX_HOME: join(home, "nowhere") })).toEqual({});
    writeFileSync(join(home, "config.toml"), "this is = = not toml");
    expect(readUserCodexConfig({ CODEX_HOME: home })).toEqual({});
  });

  test("without CODEX_HOME it is ~/.codex", () => {
    const fakeHome = mkdtempSync(join(tmpdir(), "lean-user-"));
    Bun.spawnSync(["mkdir", "-p", join(fakeHome, ".codex")]);
    writeFileSync(join(fakeHome, ".codex", "config.toml"), "check_for_update_on_startup = true\n");
    expect(readUserCodexConfig({ HOME: fakeHome })).toEqual({ check_for_update_on_startup: true });
    rmSync(fakeHome, { recursive: true, force: true });
  });
});

describe("createLsbReleaseShim", () => {
  /** A directory with a fake `lsb_release` that prints `answer` for -a and its arguments otherwise. */
  function fakeLsbRelease(answer: string): string {
    const dir = mkdtempSync(join(tmpdir(), "fake-lsb-"));
    writeFileSync(join(dir, "answer"), answer);
    writeFileSync(join(dir, "lsb_release"), `#!/bin/sh\n[ "$1" = "-a" ] && exec cat "${dir}/answer"\necho "real $*"\n`, { mode: 0o755 });
    return dir;
  }

  test("no lsb_release on PATH: nothing to shim", async () => {
    expect(await createLsbReleaseShim("/nonexistent")).toBeUndefined();
    expect(await createLsbReleaseShim(undefined)).toBeUndefined();
  });

  test("answers -a exactly as the real one did, quotes and tabs included; anything else goes to the real one", async () => {
    const answer = "Distributor ID:\tOdd'Distro\"\nDescription:\tIt's $HOME `x`\n";
    const fake = fakeLsbRelease(answer);
    const shim = await createLsbReleaseShim(fake);
    try {
      expect(shim).toBeDefined();
      const run = (...args: string[]) => Bun.spawnSync([join(shim?.dir ?? "", "lsb_release"), ...args]).stdout.toString();
      expect(run("-a")).toBe(answer);
      expect(run("-is")).toBe("real -is\n");
    } finally {
      shim?.remove();
      rmSync(fake, { recursive: true, force: true });
    }
    expect(existsSync(shim?.dir ?? "/")).toBe(false);
  });
});

test("createLsbReleaseShim: an unwritable temp directory costs the saving, never a turn", async () => {
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = "/nonexistent/tmp";
  try {
    expect(await createLsbReleaseShim("/usr/bin:/bin")).toBeUndefined();
  } finally {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
  }
});
