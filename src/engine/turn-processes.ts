import { readdirSync, readFileSync } from "node:fs";

/**
 * Ending the processes a turn started. codex runs every command in a session of its own, so
 * neither killing codex (or its process group) nor interrupting an app-server turn ends it: the
 * command is re-parented to PID 1 and runs on. What a turn's processes do share is their
 * environment: codex gives every command `CODEX_THREAD_ID=<thread>` (even with
 * `shell_environment_policy.inherit = "none"`), and a thread runs one turn at a time. So a turn's
 * processes are those whose environment carries one of its markers, plus their descendants (a
 * command may clear its environment for a child while it still runs).
 *
 * Linux only: it reads /proc. Elsewhere it finds nothing and ends nothing.
 */

/** How a command of `threadId` is marked, by codex itself. */
export function threadMarker(threadId: string): string {
  return `CODEX_THREAD_ID=${threadId}`;
}

/** The variable the exec engine sets on each `codex exec`, so that codex itself is found with its commands. */
export const TURN_MARKER_NAME = "CODEX_HTTP_SERVER_TURN";

/** How long a turn's processes get to end on SIGTERM (running their traps, removing their lock files) before SIGKILL. */
export const TERM_GRACE_MS = 300;
/** How long `endMarkedProcesses` keeps looking for processes to end, grace included. */
export const END_DEADLINE_MS = 1_000;
/** Freeze rounds in one look: each round can only find children forked before the last freeze. */
const MAX_FREEZE_ROUNDS = 50;
/** How often the grace looks whether they have ended. */
const POLL_MS = 5;
type ProcessEntry = { pid: number; ppid: number; state: string };

function readEntry(pid: number): ProcessEntry | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // The command name sits in parentheses and may itself hold spaces or parentheses.
    const [state = "", ppid = "0"] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { pid, ppid: Number(ppid), state };
  } catch {
    return undefined;
  }
}

function liveProcesses(): ProcessEntry[] {
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return [];
  }
  const entries: ProcessEntry[] = [];
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const entry = readEntry(pid);
    // A zombie has ended already; it waits only for its parent to read its status.
    if (entry && entry.state !== "Z" && entry.state !== "X") entries.push(entry);
  }
  return entries;
}

function carriesMarker(pid: number, markers: readonly string[]): boolean {
  let environ: string;
  try {
    environ = `\0${readFileSync(`/proc/${pid}/environ`, "latin1")}`;
  } catch {
    return false;
  }
  return markers.some((marker) => environ.includes(`\0${marker}\0`));
}

/** Every live process that carries one of `markers`, and every live descendant of one. */
export function findMarkedProcesses(markers: readonly string[]): number[] {
  if (markers.length === 0) return [];
  const entries = liveProcesses();
  const children = new Map<number, number[]>();
  for (const { pid, ppid } of entries) {
    const siblings = children.get(ppid);
    if (siblings) siblings.push(pid);
    else children.set(ppid, [pid]);
  }
  const found = new Set<number>();
  const queue = entries.filter(({ pid }) => carriesMarker(pid, markers)).map(({ pid }) => pid);
  while (queue.length > 0) {
    const pid = queue.pop() as number;
    if (found.has(pid)) continue;
    found.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return [...found];
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already, or not ours to signal.
  }
}

/**
 * Stops every marked process it finds, and looks again: a stopped process cannot fork, and a
 * child forked before the stop landed shows up in the next round. Returns the pids it stopped.
 */
function freeze(markers: readonly string[]): number[] {
  const stopped = new Set<number>();
  for (let round = 0; round < MAX_FREEZE_ROUNDS; round++) {
    const fresh = findMarkedProcesses(markers).filter((pid) => !stopped.has(pid));
    if (fresh.length === 0) break;
    for (const pid of fresh) {
      signal(pid, "SIGSTOP");
      stopped.add(pid);
    }
  }
  return [...stopped];
}

function freezeAndKill(markers: readonly string[]): number[] {
  const frozen = freeze(markers);
  for (const pid of frozen) signal(pid, "SIGKILL");
  return frozen;
}

function anyAlive(pids: readonly number[]): boolean {
  return pids.some((pid) => {
    const entry = readEntry(pid);
    return entry !== undefined && entry.state !== "Z" && entry.state !== "X";
  });
}

/**
 * Ends every process carrying one of `markers` (and its descendants): frozen, then SIGTERM, so
 * that a command can clean up (a shell runs its EXIT trap; a killed `pyenv rehash` would leave a
 * lock that hangs every later login shell), and after `TERM_GRACE_MS` SIGKILL for what is left,
 * looking again until none is alive or `END_DEADLINE_MS` passes. Returns the pids it signalled.
 */
export async function endMarkedProcesses(markers: readonly string[]): Promise<Set<number>> {
  const deadline = performance.now() + END_DEADLINE_MS;
  const frozen = freeze(markers);
  const ended = new Set(frozen);
  if (frozen.length === 0) return ended;
  for (const pid of frozen) {
    signal(pid, "SIGTERM");
    signal(pid, "SIGCONT");
  }
  const graceEnds = performance.now() + TERM_GRACE_MS;
  while (anyAlive(frozen) && performance.now() < graceEnds) await Bun.sleep(POLL_MS);
  for (;;) {
    const killed = freezeAndKill(markers);
    for (const pid of killed) ended.add(pid);
    if (killed.length === 0 || performance.now() > deadline) return ended;
    // A killed process is not gone the instant kill() returns; look again once the kernel has had a turn.
    await Bun.sleep(POLL_MS);
  }
}

/** SIGKILL at once, without a grace: for an exit that cannot wait (a second signal). */
export function endMarkedProcessesNow(markers: readonly string[]): void {
  freezeAndKill(markers);
}
