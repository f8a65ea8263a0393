import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type SandboxMode, tomlInline, turnSandbox, untrustedProject } from "../src/engine/codex-launch";
import type { TurnOptions } from "../src/engine/types";

describe("turnSandbox", () => {
  const cases: Array<[string, TurnOptions["sandbox"], boolean, Record<string, unknown>, string[], SandboxMode]> = [
    ["bypass: full access", undefined, true, {}, [], "danger-full-access"],
    ["bypass, whatever config.toml says", undefined, true, { sandbox_mode: "read-only" }, [], "danger-full-access"],
    ["a request's own sandbox, with bypass", "read-only", true, {}, [], "read-only"],
    ["a request's own sandbox, without", "read-only", false, { sandbox_mode: "workspace-write" }, [], "read-only"],
    ["no bypass, nothing configured: read-only", undefined, false, {}, [], "read-only"],
    ["no bypass: config.toml's sandbox_mode", undefined, false, { sandbox_mode: "workspace-write" }, [], "workspace-write"],
    ["no bypass: --codex-config's, over config.toml's", undefined, false, { sandbox_mode: "workspace-write" }, ['sandbox_mode="danger-full-access"'], "danger-full-access"],
    ["the last --codex-config wins, quoted or bare", undefined, false, {}, ['sandbox_mode="danger-full-access"', "sandbox_mode=workspace-write"], "workspace-write"],
    ["other overrides do not count", undefined, false, {}, ['sandbox_workspace_write.network_access=true'], "read-only"],
    ["a value codex would not take: read-only", undefined, false, { sandbox_mode: "wide-open" }, [], "read-only"],
  ];
  for (const [name, requested, bypass, userConfig, configOverrides, expected] of cases) {
    test(name, () => {
      expect(turnSandbox(requested, { bypassApprovalsAndSandbox: bypass, configOverrides }, userConfig)).toBe(expected);
    });
  }
});

describe("untrustedProject", () => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "codex-launch-")));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const repo = join(root, "repo");
  const sub = join(repo, "src");
  mkdirSync(join(repo, ".git"), { recursive: true });
  mkdirSync(sub);
  const plain = join(root, "plain");
  mkdirSync(plain);
  const link = join(root, "link");
  symlinkSync(repo, link);
  const verdict = (path: string, level = "trusted") => ({ projects: { [path]: { trust_level: level } } });

  const cases: Array<[string, string, SandboxMode, Record<string, unknown>, string | undefined]> = [
    ["read-only: codex records nothing, so no verdict is given", repo, "read-only", {}, undefined],
    ["full access, no verdict in config.toml: untrusted, in memory", repo, "danger-full-access", {}, repo],
    ["workspace-write alike", repo, "workspace-write", {}, repo],
    ["outside any repository alike", plain, "danger-full-access", {}, plain],
    ["config.toml trusts the directory: its verdict stands", repo, "danger-full-access", verdict(repo), undefined],
    ["or distrusts it", repo, "danger-full-access", verdict(repo, "untrusted"), undefined],
    ["a directory inside a repository config.toml trusts", sub, "danger-full-access", verdict(repo), undefined],
    ["a verdict on another directory does not count", repo, "danger-full-access", verdict(plain), repo],
    ["an entry without a trust_level does not count", repo, "danger-full-access", { projects: { [repo]: {} } }, repo],
    ["a symlinked work_dir is named by its real path", link, "danger-full-access", {}, repo],
  ];
  for (const [name, workDir, sandbox, userConfig, marked] of cases) {
    test(name, () => {
      expect(untrustedProject(workDir, sandbox, userConfig)).toEqual(marked === undefined ? undefined : { [marked]: { trust_level: "untrusted" } });
    });
  }
});

describe("tomlInline", () => {
  test.each([
    ["plain", { "/srv/repo": { trust_level: "untrusted" } }, '{"/srv/repo"={"trust_level"="untrusted"}}'],
    ["quotes, backslashes, control characters and DEL escaped", { 'a"b\\c\nd\u007f': "x" }, '{"a\\"b\\\\c\\nd\\u007f"="x"}'],
  ])("%s", (_, value, expected) => {
    expect(tomlInline(value)).toBe(expected);
    // As TOML reads it back.
    expect(Bun.TOML.parse(`v = ${expected}`)).toEqual({ v: value });
  });
});
