/**
 * The same scripted turn, (a) through the SDK in this process with no HTTP, and (b) through the
 * server with an SSE client. Interleaved, alternating which goes first, so that drift in the
 * machine's speed hits both alike. Both run codex alike (the lean profile and the lsb_release
 * shim) and count a turn as done at codex's turn.completed, as the server does.
 */
import { Codex } from "@openai/codex-sdk";
import { withPathDirs } from "../src/engine/codex-launch";
import { leanOverrides, readUserCodexConfig } from "../src/engine/lean-profile";
import { createLsbReleaseShim } from "../src/engine/lsb-release-shim";
import { endsTurn } from "../src/engine/sdk-engine";
import { startMockModel } from "../test/fixtures/mock-model";
import { postMessage } from "../test/fixtures/turns";
import { benchCodexHome, median, round, startServerProcess, table } from "./lib";

type Timing = { firstEventMs: number; doneMs: number };

async function direct(codex: Codex, workDir: string): Promise<Timing> {
  const started = performance.now();
  const thread = codex.startThread({
    sandboxMode: "danger-full-access",
    approvalPolicy: "never",
    workingDirectory: workDir,
    skipGitRepoCheck: true,
  });
  const { events } = await thread.runStreamed("say hi");
  let firstEventMs = 0;
  let doneMs = 0;
  // Read to the end all the same, so that codex has exited before the next turn starts.
  for await (const event of events) {
    firstEventMs ||= performance.now() - started;
    if (endsTurn(event)) doneMs ||= performance.now() - started;
  }
  return { firstEventMs, doneMs };
}

async function viaServer(url: string, workDir: string): Promise<Timing> {
  const started = performance.now();
  const res = await postMessage(url, { type: "user_message", message: "say hi", work_dir: workDir });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  let firstEventMs = 0;
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) break;
    text += decoder.decode(chunk.value, { stream: true });
    if (!firstEventMs && text.includes("\nid: ")) firstEventMs = performance.now() - started;
    if (text.includes("event: done\n")) break;
  }
  const doneMs = performance.now() - started;
  await reader.cancel();
  return { firstEventMs, doneMs };
}

export async function turnOverhead({ turns }: { turns: number }): Promise<string> {
  const model = startMockModel();
  const home = benchCodexHome(model.url);
  const env: Record<string, string> = { ...(process.env as Record<string, string>), ...home.env, RUST_LOG: "info" };
  const server = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0"], env);
  // The same codex configuration on both sides: the server's default lean profile.
  const shim = await createLsbReleaseShim(env.PATH);
  const codex = new Codex({ env: withPathDirs(env, shim ? [shim.dir] : []), configOverrides: leanOverrides(readUserCodexConfig(env)) });
  const workDir = "/tmp";
  const a: Timing[] = [];
  const b: Timing[] = [];
  try {
    await direct(codex, workDir);
    await viaServer(server.url, workDir);
    for (let i = 0; i < turns; i++) {
      if (i % 2 === 0) {
        a.push(await direct(codex, workDir));
        b.push(await viaServer(server.url, workDir));
      } else {
        b.push(await viaServer(server.url, workDir));
        a.push(await direct(codex, workDir));
      }
    }
  } finally {
    await server.stop();
    await model.stop();
    home.remove();
    shim?.remove();
  }
  const row = (name: string, pick: (t: Timing) => number) => {
    const ma = median(a.map(pick));
    const mb = median(b.map(pick));
    return [name, round(ma), round(mb), round(mb - ma), round(mb / ma, 3)];
  };
  return [
    `Turn overhead: ${turns} interleaved \`say hi\` turns each, both with the lean profile, medians.`,
    "",
    table(
      ["", "(a) SDK, no HTTP (ms)", "(b) through the server (ms)", "b − a (ms)", "b / a"],
      [row("time to first event", (t) => t.firstEventMs), row("time to done", (t) => t.doneMs)],
    ),
  ].join("\n");
}
