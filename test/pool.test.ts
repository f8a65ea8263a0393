/**
 * How the app-server pool spreads turns over its processes: a burst of new turns must not all go
 * to the first process (turns used to count only once their thread was open, so a burst tied at
 * zero).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AppServerPool } from "../src/engine/app-server/pool";
import { locateCodex } from "../src/engine/codex-binary";
import { createLogger } from "../src/log";
import { type CliProcess, startCli } from "./fixtures/cli-process";
import { appServersUnder, descendants, isAlive } from "./fixtures/processes";
import { readSse, sseReader } from "./fixtures/sse";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { doneOf, postMessage, useScriptedCodex } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

/** A pool whose processes are never started: picking needs none. */
function idlePool(size: number): AppServerPool {
  const launch = { argv: () => [], env: {}, codexPath: "/nonexistent", requestTimeoutMs: 1_000, log: createLogger("off") };
  const turns = { onNotification() {}, onRequest() {}, endTurn() {} };
  return new AppServerPool(size, launch, turns);
}

test("a burst of new turns is spread over the processes as they are claimed, the least busy first", () => {
  const pool = idlePool(3);
  const claims = Array.from({ length: 6 }, () => pool.claim(undefined));
  expect(claims.map((claim) => claim.member.index)).toEqual([0, 1, 2, 0, 1, 2]);
  // A turn on process 1 ends: the next new turn goes there.
  claims[1]?.done();
  claims[1]?.done();
  expect(pool.claim(undefined).member.index).toBe(1);
});

test("between processes equally busy, the one with fewer threads loaded gets the turn", () => {
  const pool = idlePool(2);
  pool.members[0]?.thread("01a20000-0000-7000-8000-000000000001");
  expect(pool.claim(undefined).member.index).toBe(1);
});

/** User and system CPU ticks a process has used. */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return Number(fields[11]) + Number(fields[12]);
}

let server: TestServer;
beforeAll(() => {
  server = startTestServer({ engine: "app-server", appServers: 2 });
});
afterAll(async () => {
  await server.close();
});

test("--app-servers 2 under a burst of 6 new turns: the least used process does at least a quarter of the work", async () => {
  const pids = await waitFor("both app-servers", () => {
    const found = appServersUnder(process.pid);
    return found.length === 2 ? found : undefined;
  }, 20_000);
  // Both are up and idle before the burst; what each spends from here is the burst's.
  await Promise.all([1, 2].map(async (n) => doneOf((await readSse(await server.send({ type: "user_message", message: `say warm ${n}` }))).frames)));
  const before = pids.map(cpuTicks);
  const dones = await Promise.all(
    Array.from({ length: 6 }, async (_, n) => doneOf((await readSse(await server.send({ type: "user_message", message: `say burst ${n}` }))).frames)),
  );
  expect(dones.map((done) => done.status)).toEqual(Array(6).fill("completed"));
  const spent = pids.map((pid, i) => cpuTicks(pid) - (before[i] as number));
  const total = spent.reduce((sum, ticks) => sum + ticks, 0);
  expect(Math.min(...spent)).toBeGreaterThanOrEqual(total / 4);
}, 60_000);

describe("an app-server is replaced by a fresh one once idle past its limits", () => {
  const scripted = useScriptedCodex();

  async function say(cli: CliProcess, body: Record<string, unknown>) {
    return doneOf((await readSse(await postMessage(cli.url, { type: "user_message", ...body }))).frames);
  }

  /** The one app-server of `cli`, once there is exactly one (a replaced one may still be exiting). */
  const theAppServer = (cli: CliProcess) =>
    waitFor("one app-server", () => {
      const found = appServersUnder(cli.process.pid);
      return found.length === 1 ? found[0] : undefined;
    }, 20_000);

  test("--app-server-max-threads 3: after its third thread; a thread it held resumes on the new one, its history intact", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--engine", "app-server", "--app-server-max-threads", "3"], scripted.home.env);
    try {
      const first = await say(cli, { message: "say one" });
      const original = await theAppServer(cli);
      for (const text of ["two", "three"]) expect((await say(cli, { message: `say ${text}` })).status).toBe("completed");
      const fresh = await waitFor("a fresh app-server", () => {
        const found = appServersUnder(cli.process.pid);
        return found.length === 1 && found[0] !== original ? found[0] : undefined;
      }, 20_000);
      expect(isAlive(original)).toBe(false);
      expect(await say(cli, { message: "count", thread_id: first.thread_id })).toMatchObject({ status: "completed", final_response: "2" });
      expect(await theAppServer(cli)).toBe(fresh);
      expect(cli.stderr()).toContain("codex app-server recycled");
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  }, 60_000);

  test("--app-server-max-rss 1m: after every turn, and no turn fails", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--engine", "app-server", "--app-server-max-rss", "1m"], scripted.home.env);
    try {
      const seen = new Set<number>();
      for (const text of ["a", "b", "c"]) {
        expect((await say(cli, { message: `say ${text}` })).status).toBe("completed");
        seen.add(await theAppServer(cli));
      }
      expect(seen.size).toBeGreaterThanOrEqual(2);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  }, 60_000);

  test("turns that end while the server shuts down: their processes are replaced by none, as no turn will come", async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--engine", "app-server", "--app-servers", "2", "--app-server-max-rss", "1m"], {
      ...scripted.home.env,
      RUST_LOG: "debug",
    });
    try {
      // One turn on each process: the first ends (and its process is replaced) while the second still runs.
      const turns = await Promise.all(
        ["sleep 1500 first", "sleep 3500 second"].map(async (message) => sseReader(await postMessage(cli.url, { type: "user_message", message }))),
      );
      for (const turn of turns) await turn.until((frame) => frame.event === "turn.started");
      cli.process.kill("SIGTERM");
      for (const [turn, answer] of [[turns[0], "first"], [turns[1], "second"]] as const) {
        expect(doneOf((await turn!.rest()).frames)).toMatchObject({ status: "completed", final_response: answer });
      }
      expect(await cli.process.exited).toBe(0);
      const afterSignal = cli.stderr().slice(cli.stderr().indexOf("shutting down"));
      expect(afterSignal.match(/codex app-server recycled/g)).toHaveLength(2);
      expect(afterSignal).not.toContain("codex app-server started");
    } finally {
      await cli.stop();
    }
  }, 60_000);

  test("a process replaced just before the server stops is waited for: it does not outlive the server", async () => {
    // codex behind a script that, once codex has exited, lingers while a file says so and shrugs
    // off SIGTERM: the process replaced after the turn stays until the server kills it, which only
    // a server that waits for it does before it exits.
    const slow = join(scripted.scratch, "slow-exit");
    const codex = join(scripted.scratch, "codex-slow-exit");
    const real = locateCodex({ explicitPath: undefined, pathEnv: "", executableDir: scripted.scratch }).path;
    writeFileSync(codex, `#!/bin/sh\n"${real}" "$@"\ntrap '' TERM\nwhile [ "$1" = app-server ] && [ -e "${slow}" ]; do sleep 0.05; done\n`, { mode: 0o755 });
    const cli = await startCli(["-a", "127.0.0.1:0", "--engine", "app-server", "--app-server-max-rss", "1m", "--codex-path", codex], scripted.home.env);
    try {
      writeFileSync(slow, "");
      expect((await say(cli, { message: "say a" })).status).toBe("completed");
      const lingering = await waitFor("the replaced process lingering", () => {
        const sleeping = descendants(cli.process.pid).find((found) => found.name === "sleep");
        return sleeping?.ppid;
      }, 10_000);
      expect(await cli.stop()).toBe(0);
      expect(isAlive(lingering)).toBe(false);
    } finally {
      rmSync(slow, { force: true });
      await cli.stop();
    }
  }, 60_000);
});
