/**
 * The two engines side by side, each in its own server process: CPU per turn of the server's
 * whole process tree (the server, codex exec or app-server, and what they run), wall time per
 * turn, then 10 turns at once: their wall time and the peak RSS and PSS of the tree.
 */
import { readFileSync } from "node:fs";
import { startMockModel } from "../test/fixtures/mock-model";
import { descendants, hasUnreapedChild } from "../test/fixtures/processes";
import { readSse } from "../test/fixtures/sse";
import { doneOf, postMessage } from "../test/fixtures/turns";
import { benchCodexHome, cpuSeconds, median, mib, ownCpuSeconds, procStatusBytes, round, type ServerProcess, startServerProcess, table } from "./lib";

const ENGINE_NAMES = ["exec", "app-server"] as const;
type Engine = (typeof ENGINE_NAMES)[number];

/** The CPU a live process has used, its own and its waited-for children's. */
function liveCpuSeconds(pid: number): number {
  try {
    return cpuSeconds(pid);
  } catch {
    return 0;
  }
}

/**
 * CPU of the server and everything below it. Reaped children (each `codex exec`) are in the
 * server's own figure; live ones (app-server, a turn still running) are added one by one.
 */
function treeCpuSeconds(pid: number): number {
  return liveCpuSeconds(pid) + descendants(pid).reduce((sum, child) => sum + liveCpuSeconds(child.pid), 0);
}

/** A process that exited since it was listed has no RSS any more (a zombie's status has no VmRSS line). */
function rssBytes(pid: number): number {
  try {
    return procStatusBytes(pid, "VmRSS") || 0;
  } catch {
    return 0;
  }
}

/**
 * A process's proportional share of its memory: RSS counts the pages codex processes share (its
 * binary, above all) once in every process, which flatters one big process against many.
 */
function pssBytes(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** `bytes` of the server's process and every process below it. */
function treeBytes(pid: number, bytes: (pid: number) => number): number {
  return bytes(pid) + descendants(pid).reduce((sum, child) => sum + bytes(child.pid), 0);
}

async function turn(server: ServerProcess, text: string): Promise<number> {
  const started = performance.now();
  const { frames } = await readSse(await postMessage(server.url, { type: "user_message", message: `say ${text}`, work_dir: "/tmp" }), 120_000);
  if (doneOf(frames).status !== "completed") throw new Error(`turn did not complete: ${JSON.stringify(doneOf(frames))}`);
  return performance.now() - started;
}

/**
 * Waits until nothing in the tree uses CPU any more, so that a turn's figure holds all of it: an
 * exited `codex exec` the server has not reaped yet is counted nowhere, so it waits for that too.
 */
async function settled(pid: number): Promise<void> {
  let last = treeCpuSeconds(pid);
  for (let i = 0; i < 50; i++) {
    await Bun.sleep(40);
    const now = treeCpuSeconds(pid);
    if (now === last && !hasUnreapedChild(pid)) return;
    last = now;
  }
}

/** /proc counts CPU in 10 ms ticks: a mean over many turns resolves what a median of ticks cannot. */
const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;

type Figures = {
  wallMs: number[];
  cpuMs: number[];
  serverCpuMs: number[];
  concurrentWallS: number;
  /** The tree's CPU over the burst of turns at once, per turn. */
  concurrentCpuMs: number;
  peakRss: number;
  idleRss: number;
  peakPss: number;
};

export async function engines({ turns, concurrent }: { turns: number; concurrent: number }): Promise<string> {
  const model = startMockModel();
  const home = benchCodexHome(model.url);
  const env = { ...(process.env as Record<string, string>), ...home.env, RUST_LOG: "warn" };
  const servers = {} as Record<Engine, ServerProcess>;
  const figures = {} as Record<Engine, Figures>;
  try {
    for (const engine of ENGINE_NAMES) {
      servers[engine] = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0", "--engine", engine], env);
      figures[engine] = { wallMs: [], cpuMs: [], serverCpuMs: [], concurrentWallS: 0, concurrentCpuMs: 0, peakRss: 0, idleRss: 0, peakPss: 0 };
      await turn(servers[engine], "warm");
    }
    for (let i = 0; i < turns; i++) {
      for (const engine of ENGINE_NAMES) {
        const { pid } = servers[engine];
        await settled(pid);
        const before = treeCpuSeconds(pid);
        const ownBefore = ownCpuSeconds(pid);
        figures[engine].wallMs.push(await turn(servers[engine], `turn-${i}`));
        await settled(pid);
        figures[engine].cpuMs.push((treeCpuSeconds(pid) - before) * 1000);
        figures[engine].serverCpuMs.push((ownCpuSeconds(pid) - ownBefore) * 1000);
      }
    }
    for (const engine of ENGINE_NAMES) {
      const { pid } = servers[engine];
      await settled(pid);
      const found = figures[engine];
      found.idleRss = treeBytes(pid, rssBytes);
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          found.peakRss = Math.max(found.peakRss, treeBytes(pid, rssBytes));
          found.peakPss = Math.max(found.peakPss, treeBytes(pid, pssBytes));
          await Bun.sleep(20);
        }
      })();
      const cpuBefore = treeCpuSeconds(pid);
      const started = performance.now();
      await Promise.all(Array.from({ length: concurrent }, (_, n) => turn(servers[engine], `at-once-${n}`)));
      found.concurrentWallS = (performance.now() - started) / 1000;
      sampling = false;
      await sampler;
      await settled(pid);
      found.concurrentCpuMs = ((treeCpuSeconds(pid) - cpuBefore) * 1000) / concurrent;
    }
  } finally {
    for (const server of Object.values(servers)) await server.stop();
    await model.stop();
    home.remove();
  }
  const exec = figures.exec;
  const appServer = figures["app-server"];
  const ratio = (a: number, b: number) => round(a / b, 2);
  const row = (engine: Engine) => {
    const f = figures[engine];
    return [
      engine,
      round(median(f.wallMs)),
      round(mean(f.cpuMs)),
      round(mean(f.serverCpuMs)),
      round(f.concurrentWallS, 2),
      round(f.concurrentCpuMs),
      mib(f.idleRss),
      mib(f.peakRss),
      mib(f.peakPss),
    ];
  };
  const cpuRatio = ratio(mean(appServer.cpuMs), mean(exec.cpuMs));
  const concurrentCpuRatio = ratio(appServer.concurrentCpuMs, exec.concurrentCpuMs);
  const rssRatio = ratio(appServer.peakRss, exec.peakRss);
  const pssRatio = ratio(appServer.peakPss, exec.peakPss);
  const wallRatio = ratio(median(appServer.wallMs), median(exec.wallMs));
  const kernel = readFileSync("/proc/version", "utf8").split(" ").slice(0, 3).join(" ");
  return [
    `Engines: ${turns} interleaved \`say\` turns each (wall: median, CPU: mean), then ${concurrent} at once; one server process per engine, lean profile, ${kernel}.`,
    "CPU, RSS and PSS are the server's whole process tree (server + codex exec or app-server + what they run), from /proc; PSS shares each page among the processes that map it, so the one codex binary of many exec processes counts once.",
    "",
    table(
      ["engine", "wall per turn (ms)", "CPU per turn, tree (ms)", "of which the server (ms)", `${concurrent} at once, wall (s)`, `${concurrent} at once, CPU per turn, tree (ms)`, "tree RSS idle (MiB)", `tree RSS peak, ${concurrent} at once (MiB)`, `tree PSS peak, ${concurrent} at once (MiB)`],
      [row("exec"), row("app-server")],
    ),
    "",
    `app-server ÷ exec: CPU per turn ${concurrentCpuRatio} at ${concurrent} at once (target ≤ 0.35: ${concurrentCpuRatio <= 0.35 ? "met" : "missed"}), ${cpuRatio} one at a time, ` +
      `peak RSS ${rssRatio}, peak PSS ${pssRatio} (target ≤ 0.35: ${pssRatio <= 0.35 ? "met" : "missed"}), ` +
      `wall per turn ${wallRatio} (target ≤ 1: ${wallRatio <= 1 ? "met" : "missed"}), ` +
      `${concurrent} at once, wall ${ratio(appServer.concurrentWallS, exec.concurrentWallS)}.`,
  ].join("\n");
}
