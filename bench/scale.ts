/** Concurrent and sequential turns through the server process: completions, wall time, server RSS, leftovers. */
import { startMockModel } from "../test/fixtures/mock-model";
import { codexProcessesUnder } from "../test/fixtures/processes";
import { readSse } from "../test/fixtures/sse";
import { doneOf, postMessage } from "../test/fixtures/turns";
import { waitFor } from "../test/fixtures/wait-for";
import { benchCodexHome, mib, procStatusBytes, round, type ServerProcess, startServerProcess, table } from "./lib";

async function turn(url: string, message = "say hi"): Promise<boolean> {
  const { frames } = await readSse(await postMessage(url, { type: "user_message", message, work_dir: "/tmp" }), 300_000);
  return doneOf(frames).status === "completed";
}

/** Samples the server's RSS while `work` runs; returns the peak. */
async function peakRss<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = procStatusBytes(pid, "VmRSS");
  const sampler = setInterval(() => {
    peak = Math.max(peak, procStatusBytes(pid, "VmRSS"));
  }, 20);
  try {
    const result = await work();
    return { result, peak: Math.max(peak, procStatusBytes(pid, "VmRSS")) };
  } finally {
    clearInterval(sampler);
  }
}

async function leftovers(server: ServerProcess): Promise<number> {
  try {
    await waitFor("codex processes to exit", () => codexProcessesUnder(server.pid).length === 0, 10_000);
  } catch {}
  return codexProcessesUnder(server.pid).length;
}

export async function scale({ concurrency, sequential }: { concurrency: number[]; sequential: number }): Promise<string> {
  const model = startMockModel();
  const home = benchCodexHome(model.url);
  const env = { ...(process.env as Record<string, string>), ...home.env, RUST_LOG: "info" };
  const server = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0"], env);
  const rows: Array<Array<string | number>> = [];
  let sequentialLine = "";
  try {
    await turn(server.url);
    for (const c of concurrency) {
      const started = performance.now();
      const { result, peak } = await peakRss(server.pid, () => Promise.all(Array.from({ length: c }, () => turn(server.url))));
      const wall = (performance.now() - started) / 1000;
      rows.push([c, `${result.filter(Boolean).length}/${c}`, round(wall, 2), mib(peak), await leftovers(server)]);
    }
    if (sequential > 0) {
      // A server that forgets finished runs after 1 s, so that what stays in memory is not the
      // runs kept for replay (up to 1,000, by design) but whatever a turn might leak.
      const forgetful = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0", "--run-retention", "1"], env);
      try {
        await turn(forgetful.url);
        const before = procStatusBytes(forgetful.pid, "VmRSS");
        const started = performance.now();
        let completed = 0;
        const checkpoints: number[] = [];
        for (let i = 1; i <= sequential; i++) {
          if (await turn(forgetful.url)) completed++;
          if (i % Math.max(1, Math.floor(sequential / 4)) === 0) checkpoints.push(mib(procStatusBytes(forgetful.pid, "VmRSS")));
        }
        await Bun.sleep(1_500);
        const after = procStatusBytes(forgetful.pid, "VmRSS");
        sequentialLine = `${sequential} sequential turns (\`--run-retention 1\`): ${completed} completed in ${round((performance.now() - started) / 1000)} s; server RSS ${mib(before)} MiB before, then ${checkpoints.join(" / ")} MiB at each quarter, ${mib(after)} MiB after (${after >= before ? "+" : ""}${mib(after - before)} MiB); codex left: ${await leftovers(forgetful)}.`;
      } finally {
        await forgetful.stop();
      }
    }
  } finally {
    await server.stop();
    await model.stop();
    home.remove();
  }
  return [
    "Scale: concurrent `say hi` turns through the server process (codex defaults + the scripted model).",
    "",
    table(["concurrent turns", "completed", "wall (s)", "server RSS peak (MiB)", "codex left after"], rows),
    ...(sequentialLine ? ["", sequentialLine] : []),
  ].join("\n");
}
