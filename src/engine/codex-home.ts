import { homedir } from "node:os";
import { join } from "node:path";

/** Where codex keeps its config and threads for this environment, as codex itself decides. */
export function codexHome(env: Record<string, string>): string {
  return env.CODEX_HOME || join(env.HOME || homedir(), ".codex");
}

/** Whether codex has stored this thread: sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl. */
export function rolloutExists(env: Record<string, string>, threadId: string): boolean {
  const sessions = join(codexHome(env), "sessions");
  try {
    for (const _ of new Bun.Glob(`**/rollout-*-${threadId}.jsonl`).scanSync({ cwd: sessions, onlyFiles: true })) return true;
  } catch {}
  return false;
}
