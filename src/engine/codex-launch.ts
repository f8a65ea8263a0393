import { existsSync, realpathSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { isTable, leanOverrides, readUserCodexConfig, type Table } from "./lean-profile";
import type { CodexLaunchOptions, TurnOptions } from "./types";

export const SANDBOX_MODES = ["read-only", "workspace-write", "danger-full-access"] as const;
export type SandboxMode = (typeof SANDBOX_MODES)[number];

/** `env` with `dirs` first on its PATH. */
export function withPathDirs(env: Record<string, string>, dirs: string[]): Record<string, string> {
  if (dirs.length === 0) return env;
  return { ...env, PATH: [...dirs, env.PATH].filter(Boolean).join(delimiter) };
}

/**
 * The config overrides a codex process starts with, on either engine: the lean profile less the
 * keys the user's config.toml sets (read now, so that an edited file counts), then --codex-config.
 */
export function codexOverrides(options: Pick<CodexLaunchOptions, "lean" | "env" | "configOverrides">): string[] {
  return [...(options.lean ? leanOverrides(readUserCodexConfig(options.env)) : []), ...options.configOverrides];
}

/** config.toml's `projects` table: a trust verdict by directory. */
export type Projects = Record<string, { trust_level: "untrusted" }>;

function isSandboxMode(value: unknown): value is SandboxMode {
  return (SANDBOX_MODES as readonly unknown[]).includes(value);
}

/** The `sandbox_mode` the operator chose: the last --codex-config that sets it, else config.toml's. */
function configuredSandbox(userConfig: Table, configOverrides: readonly string[]): SandboxMode | undefined {
  const override = configOverrides.findLast((override) => override.startsWith("sandbox_mode="));
  const value = override === undefined ? userConfig.sandbox_mode : override.slice("sandbox_mode=".length).replace(/^(["'])(.*)\1$/, "$2");
  return isSandboxMode(value) ? value : undefined;
}

/**
 * The sandbox a turn runs in, always told to codex on both engines: left to codex, a directory
 * that config.toml marks as trusted gets `workspace-write`, whatever the server chose. The
 * request's own (never looser than the server's: the route checks it), else full access with
 * bypass, else the operator's `sandbox_mode` (--codex-config, then config.toml), else read-only.
 */
export function turnSandbox(
  requested: TurnOptions["sandbox"],
  options: Pick<CodexLaunchOptions, "bypassApprovalsAndSandbox" | "configOverrides">,
  userConfig: Table,
): SandboxMode {
  if (requested) return requested;
  if (options.bypassApprovalsAndSandbox) return "danger-full-access";
  return configuredSandbox(userConfig, options.configOverrides) ?? "read-only";
}

/**
 * Whether config.toml has a trust verdict codex finds for `dir`: an entry for the directory, or
 * for the git repository it is in (the nearest directory up that holds a `.git`).
 */
function hasTrustVerdict(userConfig: Table, dir: string): boolean {
  const projects = isTable(userConfig.projects) ? userConfig.projects : {};
  const verdict = (path: string) => {
    const project = projects[path];
    return isTable(project) && project.trust_level !== undefined;
  };
  if (verdict(dir)) return true;
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, ".git"))) return verdict(at);
    if (dirname(at) === at) return false;
  }
}

/**
 * codex 0.163 writes `[projects."<repository>"] trust_level = "trusted"` into config.toml when a
 * thread starts in a directory with `workspace-write` or full access and config.toml has no
 * verdict on it; from then on codex loads that repository's own `.codex/` config (MCP servers
 * included) for every turn there, and the user's interactive codex trusts it too. The server
 * decides nothing on the user's behalf: for such a thread it gives codex the verdict "untrusted"
 * in memory, which is how codex treats a directory without one anyway, so that nothing is written.
 * Undefined when codex would write nothing: read-only, or config.toml has its own verdict.
 */
export function untrustedProject(workDir: string, sandbox: SandboxMode, userConfig: Table): Projects | undefined {
  if (sandbox === "read-only") return undefined;
  let dir = workDir;
  try {
    dir = realpathSync(workDir);
  } catch {}
  if (hasTrustVerdict(userConfig, dir)) return undefined;
  return { [dir]: { trust_level: "untrusted" } };
}

type InlineValue = string | { [key: string]: InlineValue };

/** A value as a TOML inline value, as codex's `-c KEY=VALUE` takes it: strings quoted and escaped, tables in braces. */
export function tomlInline(value: InlineValue): string {
  // JSON's string escapes are TOML's, but TOML wants DEL escaped too.
  if (typeof value === "string") return JSON.stringify(value).replace(/\x7f/g, "\\u007f");
  return `{${Object.entries(value).map(([key, item]) => `${tomlInline(key)}=${tomlInline(item)}`).join(",")}}`;
}
