/** Concurrent and sequential turns through the server process: completions, wall time, server RSS, leftovers. */
import { createCodexHome } from "../test/fixtures/codex-home";
import { startMockModel } from "../test/fixtures/mock-model";
import { codexProcessesUnder } from "../test/fixtures/processes";
import { readSse } from "../test/fixtures/sse";
import { doneOf, postMessage } from "../test/fixtures/turns";
import { waitFor } from "../test/fixtures/wait-for";
import { mib, procStatusBytes, round, type ServerProcess, startServerProcess, table } from "./lib";

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
  const home = createCodexHome(model.url);
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
      const before = procStatusBytes(server.pid, "VmRSS");
      const started = performance.now();
      let completed = 0;
      for (let i = 0; i < sequential; i++) if (await turn(server.url)) completed++;
      const after = procStatusBytes(server.pid, "VmRSS");
      sequentialLine = `${sequential} sequential turns: ${completed} completed in ${round((performance.now() - started) / 1000)} s; server RSS ${mib(before)} MiB before, ${mib(after)} MiB after (${after >= before ? "+" : ""}${mib(after - before)} MiB); codex left: ${await leftovers(server)}.`;
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
