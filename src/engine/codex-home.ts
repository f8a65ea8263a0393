import { homedir } from "node:os";
import { join } from "node:path";

/** Where codex keeps its config and threads for this environment, as codex itself decides. */
export function codexHome(env: Record<string, string>): string {
  return env.CODEX_HOME || join(env.HOME || homedir(), ".codex");
}

/** codex's rollout file names: rollout-YYYY-MM-DDThh-mm-ss-<thread id>.jsonl. */
const ROLLOUT_TIME = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]-[0-9][0-9]-[0-9][0-9]";

/**
 * Whether codex has stored this thread: sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl, the
 * whole id after the time, so that the tail of an id matches nothing. An id is lowercase hex and
 * dashes, as codex writes it; anything else (a glob character among them) matches nothing either.
 */
export function rolloutExists(env: Record<string, string>, threadId: string): boolean {
  if (!/^[0-9a-f-]+$/.test(threadId)) return false;
  const sessions = join(codexHome(env), "sessions");
  try {
    for (const _ of new Bun.Glob(`**/rollout-${ROLLOUT_TIME}-${threadId}.jsonl`).scanSync({ cwd: sessions, onlyFiles: true })) return true;
  } catch {}
  return false;
}
