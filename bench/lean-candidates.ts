/**
 * `bun bench/lean-candidates.ts`: measures each further codex setting that might belong in the lean
 * profile. For each, plain `codex exec` turns with the lean profile plus that setting, interleaved
 * with turns of the lean profile alone: CPU and wall per turn (medians), and whether the model was
 * offered different tools or instructions (then the setting changes what the agent can do).
 */
import { LEAN_PROFILE } from "../src/engine/lean-profile";
import { locateCodex } from "../src/engine/codex-binary";
import { startMockModel } from "../test/fixtures/mock-model";
import { benchCodexHome, median, ROOT, round, table } from "./lib";

const CANDIDATES = [
  "features.daemon_auto_start=false",
  "features.hooks=false",
  "features.workspace_dependencies=false",
  "features.worktrees=false",
  "features.skill_mcp_dependency_install=false",
  "features.skill_search=false",
  "features.skip_host_skill_discovery=true",
  "features.system_proxy_fallback=false",
  "features.enable_request_compression=false",
  "features.in_app_updates=false",
  "features.realtime_conversation=false",
  "features.plugin_sharing=false",
  "features.tool_suggest=false",
  "features.mentions_v2=false",
  "features.image_generation=false",
  "features.multi_agent=false",
  "features.goals=false",
];

const turns = Number(process.argv[2] ?? 6);
const model = startMockModel();
const home = benchCodexHome(model.url);
const env = { ...(process.env as Record<string, string>), ...home.env, RUST_LOG: "warn" };
const codex = locateCodex({ explicitPath: undefined, pathEnv: "", executableDir: ROOT }).path;
const lean = LEAN_PROFILE.map(([key, value]) => `${key}=${value}`);

async function turn(overrides: string[]) {
  const args = ["exec", "--experimental-json", "--sandbox", "danger-full-access", "--skip-git-repo-check", "--cd", "/tmp"];
  for (const o of [...overrides, 'approval_policy="never"']) args.push("--config", o);
  const started = performance.now();
  const child = Bun.spawn([codex, ...args], { env, stdin: new Blob(["say hi"]), stdout: "pipe", stderr: "ignore" });
  const out = await new Response(child.stdout).text();
  await child.exited;
  const usage = child.resourceUsage();
  const request = model.requests.at(-1);
  return {
    ok: out.includes('"turn.completed"'),
    wallMs: performance.now() - started,
    cpuMs: usage ? (Number(usage.cpuTime.user) + Number(usage.cpuTime.system)) / 1000 : Number.NaN,
    shape: `${request?.tools.join(",")}|${request?.developerText.length}`,
  };
}

const rows: Array<Array<string | number>> = [];
try {
  const reference = await turn(lean);
  for (const candidate of CANDIDATES) {
    const base: number[] = [];
    const withIt: number[] = [];
    const walls: number[] = [];
    const baseWalls: number[] = [];
    let shape = "";
    let ok = true;
    for (let i = 0; i < turns; i++) {
      const b = await turn(lean);
      const c = await turn([...lean, candidate]);
      base.push(b.cpuMs);
      baseWalls.push(b.wallMs);
      withIt.push(c.cpuMs);
      walls.push(c.wallMs);
      shape = c.shape;
      ok &&= c.ok;
    }
    rows.push([
      `\`${candidate}\``,
      round(median(base)),
      round(median(withIt)),
      round(median(withIt) - median(base)),
      round(median(walls) - median(baseWalls)),
      !ok ? "turn failed" : shape === reference.shape ? "same" : "**changed**",
    ]);
  }
} finally {
  await model.stop();
  home.remove();
}
console.log(
  table(["candidate (on top of the lean profile)", "lean CPU (ms)", "with it (ms)", "Δ CPU (ms)", "Δ wall (ms)", "tools + instructions"], rows),
);
