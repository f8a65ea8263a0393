import { homedir } from "node:os";
import { join } from "node:path";

/** Where codex keeps its config and threads for this environment, as codex itself decides. */
export function codexHome(env: Record<string, string>): string {
  return env.CODEX_HOME || join(env.HOME || homedir(), ".codex");
}

/** codex's rollout file names: rollout-YYYY-MM-DDThh-mm-ss-<thread id>.jsonl. */
const ROLLOUT_TIME = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]-[0-9][0-9]-[0-9][0-9]";

/** sessions/YYYY/MM/DD of `ms` in this process's time zone, as codex names the folder of a rollout it creates. */
function dayFolder(ms: number): string {
  const date = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  return join(String(date.getFullYear()), two(date.getMonth() + 1), two(date.getDate()));
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The folders under sessions/ where the rollout of `threadId` belongs, most likely first, when the
 * id tells when it was made: a UUIDv7 (codex's ids) starts with its creation time in milliseconds,
 * and codex names the rollout's folder by the local date moments later. The days either side cover
 * a rollout created across midnight and a codex in another time zone (at most a day apart).
 */
export function rolloutDayFolders(threadId: string): string[] {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7/.test(threadId)) return [];
  const createdAt = Number.parseInt(threadId.slice(0, 8) + threadId.slice(9, 13), 16);
  return [createdAt, createdAt - DAY_MS, createdAt + DAY_MS].map(dayFolder);
}

/**
 * Whether codex has stored this thread: sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl, the
 * whole id after the time, so that the tail of an id matches nothing. An id is lowercase hex and
 * dashes, as codex writes it; anything else (a glob character among them) matches nothing either.
 * It looks in the folders of the days the id names first: a continued turn asks this, and the whole
 * tree holds every thread ever stored (10,000 rollouts took about 4 ms to scan, growing with them).
 * Only then the whole tree: a rollout put elsewhere, or an id that names no time.
 */
export function rolloutExists(env: Record<string, string>, threadId: string): boolean {
  if (!/^[0-9a-f-]+$/.test(threadId)) return false;
  const sessions = join(codexHome(env), "sessions");
  const name = `rollout-${ROLLOUT_TIME}-${threadId}.jsonl`;
  return rolloutDayFolders(threadId).some((folder) => anyFile(join(sessions, folder), name)) || anyFile(sessions, `**/${name}`);
}

/** Whether `pattern` matches a file under `dir`; a folder that is not there holds none. */
function anyFile(dir: string, pattern: string): boolean {
  try {
    for (const _ of new Bun.Glob(pattern).scanSync({ cwd: dir, onlyFiles: true })) return true;
  } catch {}
  return false;
}
