import type { Subprocess } from "bun";
import { readFileSync } from "node:fs";
import { type CodexHome, createCodexHome } from "../test/fixtures/codex-home";
import { waitFor } from "../test/fixtures/wait-for";

export const ROOT = new URL("..", import.meta.url).pathname;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;
export const mib = (bytes: number) => round(bytes / 1024 / 1024);

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM). */
export function procStatusBytes(pid: number, field: string): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(`${field}:`));
  return Number(/(\d+)/.exec(line ?? "")?.[1]) * 1024;
}

/** The numeric fields of /proc/<pid>/stat after the command name (field 3 onwards). */
function statFields(pid: number): number[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
}

/** CPU time (user + system, children that were waited for included) of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return ((fields[11] ?? 0) + (fields[12] ?? 0) + (fields[13] ?? 0) + (fields[14] ?? 0)) / 100;
}

/** A process's own CPU time (user + system), without its children's, in seconds. */
export function ownCpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return ((fields[11] ?? 0) + (fields[12] ?? 0)) / 100;
}

export type ServerProcess = {
  url: string;
  pid: number;
  process: Subprocess;
  /** What the server has logged so far. */
  log(): string;
  stop(): Promise<number | null>;
};

/**
 * Starts a server command that prints `Server listening on: <url>`. Its stderr (the access log)
 * goes to a file, as it would to a log collector, so that a full pipe never slows it down.
 */
export async function startServerProcess(command: string[], env: Record<string, string>): Promise<ServerProcess> {
  const log = `/tmp/bench-server-${process.pid}-${Date.now()}.log`;
  const child = Bun.spawn(command, { env, stdout: "pipe", stderr: Bun.file(log), cwd: ROOT });
  let banner = "";
  void (async () => {
    for await (const chunk of child.stdout) banner += new TextDecoder().decode(chunk);
  })();
  const url = await waitFor("the server's banner", () => /Server listening on: (http:\/\/\S+)/.exec(banner)?.[1], 20_000);
  return {
    url,
    pid: child.pid,
    process: child,
    log: () => readFileSync(log, "utf8"),
    async stop() {
      child.kill("SIGTERM");
      const code = await child.exited;
      await Bun.file(log).delete();
      return code;
    },
  };
}

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n");
}

/**
 * A CODEX_HOME for the scripted model, with this machine's own HOME rather than the tests' empty
 * one: the bench measures codex as it runs for a user, whose login shell (which codex's defaults
 * snapshot at start-up) reads their dotfiles.
 */
export function benchCodexHome(modelUrl: string): CodexHome {
  const home = createCodexHome(modelUrl);
  const userHome = process.env.HOME;
  return userHome === undefined ? home : { ...home, home: userHome, env: { ...home.env, HOME: userHome } };
}
