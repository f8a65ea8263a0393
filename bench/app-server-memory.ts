/**
 * What many new threads cost a `codex app-server`: codex keeps about 1 MiB for every thread it
 * ever loaded. The same run of new-thread turns on two servers, side by side: one with the
 * default replacement limits (--app-server-max-threads, --app-server-max-rss), one that never
 * replaces its process. Reported: the peak RSS of the app-server processes, turns that failed,
 * and how many times a process was replaced.
 */
import { startMockModel } from "../test/fixtures/mock-model";
import { appServersUnder } from "../test/fixtures/processes";
import { readSse } from "../test/fixtures/sse";
import { doneOf, postMessage } from "../test/fixtures/turns";
import { DEFAULTS } from "../src/config";
import { benchCodexHome, mib, procStatusBytes, type ServerProcess, startServerProcess, table } from "./lib";

function appServerRssBytes(serverPid: number): number {
  return appServersUnder(serverPid).reduce((sum, pid) => {
    try {
      return sum + procStatusBytes(pid, "VmRSS");
    } catch {
      return sum;
    }
  }, 0);
}

type Outcome = { peakRss: number; failed: number; replaced: number };

async function newThreads(server: ServerProcess, turns: number): Promise<Outcome> {
  const outcome: Outcome = { peakRss: 0, failed: 0, replaced: 0 };
  for (let n = 0; n < turns; n++) {
    const { frames } = await readSse(await postMessage(server.url, { type: "user_message", message: `say thread ${n}`, work_dir: "/tmp" }), 60_000);
    if (doneOf(frames).status !== "completed") outcome.failed++;
    outcome.peakRss = Math.max(outcome.peakRss, appServerRssBytes(server.pid));
  }
  outcome.replaced = server.log().split("codex app-server recycled").length - 1;
  return outcome;
}

export async function appServerMemory({ turns }: { turns: number }): Promise<string> {
  const model = startMockModel();
  const home = benchCodexHome(model.url);
  const env = { ...(process.env as Record<string, string>), ...home.env };
  const never = ["--app-server-max-threads", String(Number.MAX_SAFE_INTEGER), "--app-server-max-rss", "1048576m"];
  const rows: Array<Array<string | number>> = [];
  try {
    for (const [label, flags] of [["defaults", []], ["never replaced", never]] as const) {
      const server = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0", "--engine", "app-server", ...flags], env);
      try {
        const { peakRss, failed, replaced } = await newThreads(server, turns);
        rows.push([label, turns, failed, replaced, mib(peakRss)]);
      } finally {
        await server.stop();
      }
    }
  } finally {
    await model.stop();
    home.remove();
  }
  return [
    `app-server memory: ${turns} new-thread \`say\` turns one after another, on a server with the default limits (${DEFAULTS.appServerMaxThreads} threads, ${DEFAULTS.appServerMaxRss}) and on one that never replaces its process.`,
    "",
    table(["server", "turns", "failed", "processes replaced", "app-server peak RSS (MiB)"], rows),
  ].join("\n");
}
