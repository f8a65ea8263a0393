/**
 * What a turn costs in codex itself: plain `codex exec` with codex's defaults, the server with the
 * lean profile, and the server with --no-lean; wall and CPU per turn, then 10 turns at once.
 */
import { createCodexHome } from "../test/fixtures/codex-home";
import { startMockModel } from "../test/fixtures/mock-model";
import { readSse } from "../test/fixtures/sse";
import { doneOf, postMessage } from "../test/fixtures/turns";
import { locateCodex } from "../src/engine/codex-binary";
import { cpuSeconds, median, ROOT, round, type ServerProcess, startServerProcess, table } from "./lib";

type Cost = { wallMs: number; cpuMs: number };

const PLAIN_ARGS = ["exec", "--experimental-json", "--sandbox", "danger-full-access", "--skip-git-repo-check", "--cd", "/tmp", "--config", 'approval_policy="never"'];

async function plainTurn(codex: string, env: Record<string, string>): Promise<Cost> {
  const started = performance.now();
  const child = Bun.spawn([codex, ...PLAIN_ARGS], { env, stdin: new Blob(["say hi"]), stdout: "pipe", stderr: "ignore" });
  const out = await new Response(child.stdout).text();
  await child.exited;
  if (!out.includes('"turn.completed"')) throw new Error(`plain codex exec did not complete: ${out.slice(-300)}`);
  const usage = child.resourceUsage();
  const cpuMs = usage ? (Number(usage.cpuTime.user) + Number(usage.cpuTime.system)) / 1000 : Number.NaN;
  return { wallMs: performance.now() - started, cpuMs };
}

/** Server CPU, its own and its waited-for children's (the codex processes), across one turn. */
async function serverTurn(server: ServerProcess): Promise<Cost> {
  const cpuBefore = cpuSeconds(server.pid);
  const started = performance.now();
  const { frames } = await readSse(await postMessage(server.url, { type: "user_message", message: "say hi", work_dir: "/tmp" }), 120_000);
  if (doneOf(frames).status !== "completed") throw new Error("turn did not complete");
  const wallMs = performance.now() - started;
  await Bun.sleep(30);
  return { wallMs, cpuMs: (cpuSeconds(server.pid) - cpuBefore) * 1000 };
}

async function concurrentWall(run: () => Promise<unknown>, count: number): Promise<number> {
  const started = performance.now();
  await Promise.all(Array.from({ length: count }, run));
  return (performance.now() - started) / 1000;
}

export async function codexCost({ turns, concurrent }: { turns: number; concurrent: number }): Promise<string> {
  const model = startMockModel();
  const home = createCodexHome(model.url);
  const env = { ...(process.env as Record<string, string>), ...home.env, RUST_LOG: "warn" };
  const codex = locateCodex({ explicitPath: undefined, pathEnv: "", executableDir: ROOT }).path;
  const lean = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0"], env);
  const full = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0", "--no-lean"], env);
  const costs: Record<"plain" | "lean" | "full", Cost[]> = { plain: [], lean: [], full: [] };
  const walls: Record<"plain" | "lean" | "full", number> = { plain: 0, lean: 0, full: 0 };
  try {
    await plainTurn(codex, env);
    await serverTurn(lean);
    await serverTurn(full);
    for (let i = 0; i < turns; i++) {
      costs.plain.push(await plainTurn(codex, env));
      costs.lean.push(await serverTurn(lean));
      costs.full.push(await serverTurn(full));
    }
    walls.plain = await concurrentWall(() => plainTurn(codex, env), concurrent);
    walls.lean = await concurrentWall(() => serverTurn(lean), concurrent);
    walls.full = await concurrentWall(() => serverTurn(full), concurrent);
  } finally {
    await lean.stop();
    await full.stop();
    await model.stop();
    home.remove();
  }
  const base = { wall: median(costs.plain.map((c) => c.wallMs)), cpu: median(costs.plain.map((c) => c.cpuMs)) };
  const row = (name: "plain" | "lean" | "full", label: string) => {
    const wall = median(costs[name].map((c) => c.wallMs));
    const cpu = median(costs[name].map((c) => c.cpuMs));
    return [label, round(wall), round(wall / base.wall, 2), round(cpu), round(cpu / base.cpu, 2), round(walls[name], 2), round(walls[name] / walls.plain, 2)];
  };
  return [
    `Codex cost: ${turns} interleaved \`say hi\` turns each (medians), then ${concurrent} at once. CPU: codex's (and, through the server, the server's too).`,
    "",
    table(
      ["how", "wall per turn (ms)", "× plain", "CPU per turn (ms)", "× plain", `${concurrent} at once, wall (s)`, "× plain"],
      [
        row("plain", "plain `codex exec`, codex defaults"),
        row("lean", "server, lean profile (default)"),
        row("full", "server, `--no-lean`"),
      ],
    ),
  ].join("\n");
}
