import { delimiter } from "node:path";
import { leanOverrides, readUserCodexConfig } from "./lean-profile";
import type { CodexLaunchOptions } from "./types";

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
