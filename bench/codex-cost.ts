/**
 * What a turn costs in codex itself: plain `codex exec` with codex's defaults, plain `codex exec`
 * with the lean profile's overrides but no lsb_release shim (where there is an lsb_release to
 * shim), the server with the lean profile, and the server with --no-lean; wall and CPU per turn,
 * then 10 turns at once.
 */
import { startMockModel } from "../test/fixtures/mock-model";
import { descendants, hasUnreapedChild } from "../test/fixtures/processes";
import { readSse } from "../test/fixtures/sse";
import { doneOf, postMessage } from "../test/fixtures/turns";
import { waitFor } from "../test/fixtures/wait-for";
import { locateCodex } from "../src/engine/codex-binary";
import { leanOverrides } from "../src/engine/lean-profile";
import { benchCodexHome, cpuSeconds, median, ROOT, round, type ServerProcess, startServerProcess, table } from "./lib";

type Cost = { wallMs: number; cpuMs: number };

const PLAIN_ARGS = ["exec", "--experimental-json", "--sandbox", "danger-full-access", "--skip-git-repo-check", "--cd", "/tmp", "--config", 'approval_policy="never"'];

async function plainTurn(codex: string, env: Record<string, string>, extraArgs: string[] = []): Promise<Cost> {
  const started = performance.now();
  const child = Bun.spawn([codex, ...PLAIN_ARGS, ...extraArgs], { env, stdin: new Blob(["say hi"]), stdout: "pipe", stderr: "ignore" });
  const out = await new Response(child.stdout).text();
  await child.exited;
  if (!out.includes('"turn.completed"')) throw new Error(`plain codex exec did not complete: ${out.slice(-300)}`);
  const usage = child.resourceUsage();
  const cpuMs = usage ? (Number(usage.cpuTime.user) + Number(usage.cpuTime.system)) / 1000 : Number.NaN;
  return { wallMs: performance.now() - started, cpuMs };
}

/** A turn through the server, until its done. */
async function serverTurnWall(server: ServerProcess): Promise<number> {
  const started = performance.now();
  const { frames } = await readSse(await postMessage(server.url, { type: "user_message", message: "say hi", work_dir: "/tmp" }), 120_000);
  if (doneOf(frames).status !== "completed") throw new Error("turn did not complete");
  return performance.now() - started;
}

/**
 * codex goes on exiting after a turn's done; the server has reaped it (and counted its CPU) after
 * this. Gone from the live processes is not enough: the server reaps it up to ~20 ms later (an
 * unreaped codex was seen after 27 of 30 turns), and until then its CPU is in no figure of the
 * server's; one full run read 10 CPU-ms a `--no-lean` turn.
 */
const codexExited = (server: ServerProcess) =>
  waitFor("codex to exit and be reaped", () => descendants(server.pid).length === 0 && !hasUnreapedChild(server.pid));

/** Server CPU, its own and its waited-for children's (the codex processes), across one turn: wall until its done. */
async function serverTurn(server: ServerProcess): Promise<Cost> {
  const cpuBefore = cpuSeconds(server.pid);
  const wallMs = await serverTurnWall(server);
  await codexExited(server);
  return { wallMs, cpuMs: (cpuSeconds(server.pid) - cpuBefore) * 1000 };
}

/** `count` turns at once, until the last one's done; then, outside the timing, until their codex processes are gone. */
async function concurrentWall(run: () => Promise<unknown>, count: number, settle: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await Promise.all(Array.from({ length: count }, run));
  const wall = (performance.now() - started) / 1000;
  await settle();
  return wall;
}

type How = "plain" | "lean" | "noShim" | "full";

/** Rounds of turns at once: one round is a second or two, too short to ride out a noisy neighbour. */
const CONCURRENT_ROUNDS = 3;

export async function codexCost({ turns, concurrent }: { turns: number; concurrent: number }): Promise<string> {
  const model = startMockModel();
  const home = benchCodexHome(model.url);
  const env = { ...(process.env as Record<string, string>), ...home.env, RUST_LOG: "warn" };
  const codex = locateCodex({ explicitPath: undefined, pathEnv: "", executableDir: ROOT }).path;
  const serve = (...flags: string[]) => startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0", ...flags], env);
  const servers = { lean: await serve(), full: await serve("--no-lean") };
  const leanArgs = leanOverrides({}).flatMap((override) => ["--config", override]);
  const hows: How[] = ["plain", ...(Bun.which("lsb_release") ? ["noShim" as const] : []), "lean", "full"];
  const turn = (how: How) =>
    how === "plain" ? plainTurn(codex, env) : how === "noShim" ? plainTurn(codex, env, leanArgs) : serverTurn(servers[how]);
  const costs = Object.fromEntries(hows.map((how) => [how, [] as Cost[]])) as Record<How, Cost[]>;
  const concurrentWalls = Object.fromEntries(hows.map((how) => [how, [] as number[]])) as Record<How, number[]>;
  try {
    for (const how of hows) await turn(how);
    for (let i = 0; i < turns; i++) {
      for (const how of hows) costs[how].push(await turn(how));
    }
    for (let round = 0; round < CONCURRENT_ROUNDS; round++) {
      for (const how of hows) {
        const burst =
          how === "plain" || how === "noShim"
            ? concurrentWall(() => turn(how), concurrent, async () => {})
            : concurrentWall(() => serverTurnWall(servers[how]), concurrent, () => codexExited(servers[how]));
        concurrentWalls[how].push(await burst);
      }
    }
  } finally {
    for (const server of Object.values(servers)) await server.stop();
    await model.stop();
    home.remove();
  }
  const walls = Object.fromEntries(hows.map((how) => [how, median(concurrentWalls[how])])) as Record<How, number>;
  const base = { wall: median(costs.plain.map((c) => c.wallMs)), cpu: median(costs.plain.map((c) => c.cpuMs)) };
  const labels: Record<How, string> = {
    plain: "plain `codex exec`, codex defaults",
    lean: "server, lean profile (default)",
    noShim: "plain `codex exec`, lean overrides, no lsb_release shim",
    full: "server, `--no-lean`",
  };
  const row = (how: How) => {
    const wall = median(costs[how].map((c) => c.wallMs));
    const cpu = median(costs[how].map((c) => c.cpuMs));
    return [labels[how], round(wall), round(wall / base.wall, 2), round(cpu), round(cpu / base.cpu, 2), round(walls[how], 2), round(walls[how] / walls.plain, 2)];
  };
  return [
    `Codex cost: ${turns} interleaved \`say hi\` turns each (medians), then ${concurrent} at once (median of ${CONCURRENT_ROUNDS} interleaved rounds). CPU: codex's (and, through the server, the server's too).`,
    "",
    table(["how", "wall per turn (ms)", "× plain", "CPU per turn (ms)", "× plain", `${concurrent} at once, wall (s)`, "× plain"], hows.map(row)),
  ].join("\n");
}
