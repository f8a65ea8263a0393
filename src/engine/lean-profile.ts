import { readFileSync } from "node:fs";
import { join } from "node:path";
import { codexHome } from "./codex-home";

/**
 * What `codex exec` does on every start or exit that a headless server has no use for. None of
 * these changes the tools the model is offered, the commands it can run, or the sandbox (the
 * scripted model sees the same tools and instructions either way).
 */
export const LEAN_PROFILE: ReadonlyArray<readonly [key: string, value: boolean, why: string]> = [
  ["features.plugins", false, "syncs a curated plugin repository over git and HTTP at start-up"],
  ["features.remote_plugin", false, "warms remote plugin caches at start-up"],
  ["features.apps", false, "loads ChatGPT app connectors at start-up"],
  ["features.shell_snapshot", false, "snapshots a login shell at start-up; commands still run in `bash -lc`"],
  ["analytics.enabled", false, "sends analytics events, flushed at exit"],
  ["check_for_update_on_startup", false, "asks for a newer codex at start-up"],
];

export type Table = Record<string, unknown>;

export function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Whether the user's config.toml sets `dottedKey`. Profiles do not enter into it: codex 0.163
 * refuses `profile = "..."` in config.toml (profiles are `<name>.config.toml` files chosen with
 * `--profile`, which the server does not pass).
 */
export function userSets(userConfig: Table, dottedKey: string): boolean {
  let node: unknown = userConfig;
  for (const part of dottedKey.split(".")) {
    if (!isTable(node)) return false;
    node = node[part];
  }
  return node !== undefined;
}

/** The lean profile as `--config` overrides, leaving out every key the user set. */
export function leanOverrides(userConfig: Table): string[] {
  return LEAN_PROFILE.filter(([key]) => !userSets(userConfig, key)).map(([key, value]) => `${key}=${value}`);
}

/** `$CODEX_HOME/config.toml` as codex reads it; a missing or broken one counts as empty (codex reports the latter). */
export function readUserCodexConfig(env: Record<string, string>): Table {
  try {
    const parsed: unknown = Bun.TOML.parse(readFileSync(join(codexHome(env), "config.toml"), "utf8"));
    return isTable(parsed) ? parsed : {};
  } catch {
    return {};
  }
}
