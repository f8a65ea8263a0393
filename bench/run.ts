/**
 * `bun run bench`: what the server costs on top of codex, measured side by side in one run.
 *   --quick          fewer rounds and turns, for a first look
 *   --only NAME      one section: overhead, health, sse, scale, startup, codex, engines, threads, cluster
 */
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { codexCost } from "./codex-cost";
import { engines } from "./engines";
import { healthThroughput } from "./health";
import { scale } from "./scale";
import { sseForwarding } from "./sse-forwarding";
import { startup } from "./startup";
import { threadReads } from "./threads";
import { turnOverhead } from "./turn-overhead";
import { appServerMemory } from "./app-server-memory";
import { cluster } from "./cluster";

const { values } = parseArgs({ options: { quick: { type: "boolean" }, only: { type: "string" } } });
const quick = values.quick === true;

const sections: Record<string, () => Promise<string>> = {
  overhead: () => turnOverhead({ turns: quick ? 6 : 20 }),
  health: () => healthThroughput({ rounds: quick ? 2 : 5, seconds: quick ? 2 : 5 }),
  sse: () => sseForwarding({ events: quick ? 20_000 : 200_000, rounds: quick ? 2 : 5 }),
  scale: () => scale({ concurrency: [1, 8, 32], sequential: quick ? 50 : 1000 }),
  startup: () => startup({ runs: quick ? 5 : 15 }),
  codex: () => codexCost({ turns: quick ? 4 : 10, concurrent: 10 }),
  engines: () => engines({ turns: quick ? 4 : 10, concurrent: quick ? 10 : 32 }),
  threads: () => threadReads({ rounds: quick ? 10 : 50 }),
  "app-server-memory": () => appServerMemory({ turns: quick ? 100 : 1000 }),
  cluster: () => cluster({ turns: quick ? 6 : 50, events: 10_000, rounds: quick ? 3 : 5 }),
};

const chosen = values.only ? { [values.only]: sections[values.only] } : sections;
if (values.only && !sections[values.only]) {
  console.error(`unknown section ${values.only}; one of ${Object.keys(sections).join(", ")}`);
  process.exit(2);
}

const cpu = cpus()[0]?.model ?? "unknown CPU";
console.log(`# codex-http-server benchmark\n\n${new Date().toISOString()} · Bun ${Bun.version} · ${cpus().length} × ${cpu} · ${Math.round(totalmem() / 1024 ** 3)} GiB${quick ? " · --quick" : ""}\n`);
for (const [name, run] of Object.entries(chosen)) {
  const started = performance.now();
  console.log(`## ${name}\n\n${await (run as () => Promise<string>)()}\n\n(${Math.round((performance.now() - started) / 1000)} s)\n`);
}
