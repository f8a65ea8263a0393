/** Time from spawning the server to its first /health 200: the compiled executable and `bun src/cli.ts`. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { locateCodex } from "../src/engine/codex-binary";
import { median, ROOT, round, table } from "./lib";

async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}

async function timeToHealthy(command: string[], env: Record<string, string>): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = Bun.spawn([...command, "-a", `127.0.0.1:${port}`], { env, stdout: "ignore", stderr: "ignore", cwd: "/" });
  try {
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health`)).status === 200) return performance.now() - started;
      } catch {}
      if (performance.now() - started > 10_000) throw new Error(`${command[0]} did not answer /health within 10 s`);
      await Bun.sleep(1);
    }
  } finally {
    child.kill("SIGKILL");
    await child.exited;
  }
}

export async function startup({ runs }: { runs: number }): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "bench-startup-"));
  const binary = join(dir, "sse-http-server");
  const build = Bun.spawnSync(["bun", "run", "build", "--outfile", binary], { cwd: ROOT, stdout: "ignore", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  const codexPath = locateCodex({ explicitPath: undefined, pathEnv: "", executableDir: dir }).path;
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", CODEX_PATH: codexPath };
  const compiled: number[] = [];
  const fromSource: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      compiled.push(await timeToHealthy([binary], env));
      fromSource.push(await timeToHealthy(["bun", join(ROOT, "src/cli.ts")], env));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return [
    `Start-up to the first /health 200 (spawn included, ${runs} runs each, interleaved, median).`,
    "",
    table(
      ["how it runs", "ms"],
      [
        ["compiled executable (`bun run build`)", round(median(compiled))],
        ["`bun src/cli.ts`", round(median(fromSource))],
      ],
    ),
  ].join("\n");
}
