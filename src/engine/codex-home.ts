import { homedir } from "node:os";
import { join } from "node:path";

/** Where codex keeps its config and threads for this environment, as codex itself decides. */
export function codexHome(env: Record<string, string>): string {
  return env.CODEX_HOME || join(env.HOME || homedir(), ".codex");
}
