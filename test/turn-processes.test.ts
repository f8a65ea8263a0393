/**
 * Stop means stop: every way a turn ends ends the processes it started, on both engines. codex
 * starts each command in a session of its own, so a command that outlives its turn is re-parented
 * to PID 1: these tests look for it machine-wide, by a command line no other test uses. The turns
 * run their commands with `sh`, not in a login shell: a login shell here runs `pyenv rehash`, and
 * what these tests end should not depend on the machine's profile.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ENGINES } from "../src/config";
import { endMarkedProcesses, findMarkedProcesses } from "../src/engine/turn-processes";
import { startCli } from "./fixtures/cli-process";
import { appServersUnder, isAlive, turnProcessesUnder } from "./fixtures/processes";
import { readSse, sseReader } from "./fixtures/sse";
import { agentTexts, doneOf, postMessage, useScriptedCodex } from "./fixtures/turns";
import { type TestServer, startTestServer } from "./fixtures/test-server";
import { waitFor } from "./fixtures/wait-for";

/** A `sleep` whose argument no other process on the machine has: 7000 s plus a random fraction. */
function uniqueSleep(): string {
  return `sleep 7000.${Math.floor(Math.random() * 1e9)}`;
}

/** Every live process on the machine whose command line is exactly `command` (split on spaces). */
function processesRunning(command: string): number[] {
  const wanted = `${command.split(" ").join("\0")}\0`;
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return readFileSync(`/proc/${entry}/cmdline`, "latin1") === wanted && isAlive(Number(entry));
      } catch {
        return false;
      }
    })
    .map(Number);
}

function running(command: string): Promise<number[]> {
  return waitFor(`${command} to run`, () => {
    const found = processesRunning(command);
    return found.length > 0 ? found : undefined;
  });
}

describe("endMarkedProcesses", () => {
  const spawned: Array<{ kill(): void }> = [];
  afterEach(() => {
    for (const child of spawned.splice(0)) child.kill();
  });

  test("ends a marked process tree that left its session, a child whose environment was cleared, and nothing unmarked", async () => {
    const marker = `CODEX_THREAD_ID=test-${crypto.randomUUID()}`;
    const [inSession, cleared, unmarked] = [uniqueSleep(), uniqueSleep(), uniqueSleep()];
    // As codex runs a command: in a session of its own, with the marker in its environment.
    spawned.push(
      Bun.spawn(["setsid", "bash", "-c", `${inSession} & env -i ${cleared} & wait`], {
        env: { ...process.env, [marker.split("=")[0] as string]: marker.split("=")[1] as string },
        stdio: ["ignore", "ignore", "ignore"],
      }),
      Bun.spawn(unmarked.split(" "), { stdio: ["ignore", "ignore", "ignore"] }),
    );
    const found = [...(await running(inSession)), ...(await running(cleared))];
    const bystander = await running(unmarked);
    expect(findMarkedProcesses([marker]).sort()).toEqual(expect.arrayContaining(found.sort()));

    const ended = await endMarkedProcesses([marker]);
    expect([...ended]).toEqual(expect.arrayContaining(found));
    expect(processesRunning(inSession)).toEqual([]);
    expect(processesRunning(cleared)).toEqual([]);
    expect(processesRunning(unmarked)).toEqual(bystander);
    expect(findMarkedProcesses([marker])).toEqual([]);
  });

  test("a shell that keeps forking is frozen before it is killed", async () => {
    const marker = `CODEX_THREAD_ID=test-${crypto.randomUUID()}`;
    const sleeper = uniqueSleep();
    spawned.push(
      Bun.spawn(["setsid", "bash", "-c", `while :; do ${sleeper} & done`], {
        env: { ...process.env, CODEX_THREAD_ID: marker.split("=")[1] as string },
        stdio: ["ignore", "ignore", "ignore"],
      }),
    );
    await running(sleeper);
    await endMarkedProcesses([marker]);
    expect(processesRunning(sleeper)).toEqual([]);
    expect(findMarkedProcesses([marker])).toEqual([]);
  });

  test("SIGTERM first: a command's EXIT trap runs; one that ignores SIGTERM is killed all the same", async () => {
    const marker = `CODEX_THREAD_ID=test-${crypto.randomUUID()}`;
    const [polite, stubborn] = [uniqueSleep(), uniqueSleep()];
    const lock = join(tmpdir(), `turn-processes-${crypto.randomUUID()}.lock`);
    writeFileSync(lock, "");
    spawned.push(
      Bun.spawn(["setsid", "bash", "-c", `trap 'rm -f ${lock}' EXIT; ${polite} & wait`], {
        env: { ...process.env, CODEX_THREAD_ID: marker.split("=")[1] as string },
        stdio: ["ignore", "ignore", "ignore"],
      }),
      Bun.spawn(["setsid", "bash", "-c", `trap '' TERM; ${stubborn}`], {
        env: { ...process.env, CODEX_THREAD_ID: marker.split("=")[1] as string },
        stdio: ["ignore", "ignore", "ignore"],
      }),
    );
    await running(polite);
    await running(stubborn);
    await endMarkedProcesses([marker]);
    expect(existsSync(lock)).toBe(false);
    expect(processesRunning(polite)).toEqual([]);
    expect(processesRunning(stubborn)).toEqual([]);
  });

  test("no marker, nothing found", () => {
    expect(findMarkedProcesses([])).toEqual([]);
  });
});

const scripted = useScriptedCodex();

for (const engine of ENGINES) {
  describe(`a turn's commands end with the turn, ${engine} engine`, () => {
    let server: TestServer;

    beforeAll(() => {
      server = startTestServer({ engine, turnTimeoutMs: 4_000 });
    });
    afterAll(async () => {
      await server.close();
    });

    /** Starts a turn that runs `command` and returns once the command runs, with the stream still being read. */
    async function startCommand(command: string, id: string, init: { signal?: AbortSignal } = {}) {
      const stream = sseReader(await postMessage(server.url, { type: "user_message", message: `sh ${command}; echo x`, id }, init));
      await stream.until((frame) => frame.event === "item.started");
      await running(command);
      return stream;
    }

    test("user_cancel: done says cancelled, and the command is gone by then", async () => {
      const command = uniqueSleep();
      const stream = await startCommand(command, `cancel-${engine}`);
      expect((await postMessage(server.url, { type: "user_cancel", id: `cancel-${engine}` })).status).toBe(200);
      const { frames } = await stream.rest();
      expect(doneOf(frames).status).toBe("cancelled");
      expect(processesRunning(command)).toEqual([]);
    });

    test("DELETE /runs/{id}: the same", async () => {
      const command = uniqueSleep();
      const stream = await startCommand(command, `delete-${engine}`);
      expect((await fetch(`${server.url}/runs/delete-${engine}`, { method: "DELETE" })).status).toBe(200);
      const { frames } = await stream.rest();
      expect(doneOf(frames).status).toBe("cancelled");
      expect(processesRunning(command)).toEqual([]);
    });

    test("the client goes away: by the time the run says cancelled, the command is gone", async () => {
      const command = uniqueSleep();
      const client = new AbortController();
      await startCommand(command, `gone-${engine}`, { signal: client.signal });
      client.abort();
      await waitFor("the run to end", async () => {
        const run = (await (await fetch(`${server.url}/runs/gone-${engine}`)).json()) as { status: string };
        return run.status === "cancelled";
      });
      expect(processesRunning(command)).toEqual([]);
    });

    test("user_edit: the edited turn starts once the old turn's command is gone", async () => {
      const command = uniqueSleep();
      const old = await startCommand(command, `edit-${engine}`);
      const edited = sseReader(await postMessage(server.url, { type: "user_edit", id: `edit-${engine}`, message: "say edited" }));
      await edited.until((frame) => frame.event === "thread.started");
      expect(processesRunning(command)).toEqual([]);
      expect(doneOf((await old.rest()).frames).status).toBe("cancelled");
      expect(doneOf((await edited.rest()).frames).status).toBe("completed");
    });

    test("--turn-timeout: done says timeout, and the command is gone by then", async () => {
      const command = uniqueSleep();
      const stream = await startCommand(command, `timeout-${engine}`);
      const { frames } = await stream.rest();
      expect(doneOf(frames).status).toBe("timeout");
      expect(processesRunning(command)).toEqual([]);
    });

    test("a turn that completes: what its command left running in a session of its own ends too", async () => {
      const command = uniqueSleep();
      const pidFile = join(scripted.scratch, `background-${engine}.pid`);
      const res = await postMessage(server.url, {
        type: "user_message",
        message: `sh setsid ${command} >/dev/null 2>&1 </dev/null & echo $! > ${pidFile}; kill -0 $! && echo started`,
      });
      const { frames } = await readSse(res);
      expect(doneOf(frames).status).toBe("completed");
      // It did start, and was still there when the command ended.
      expect(agentTexts(frames)).toEqual(["ran: started"]);
      const pid = Number(readFileSync(pidFile, "utf8"));
      await waitFor(`${command} (pid ${pid}) to be ended`, () => !isAlive(pid), 3_000);
    });
  });
}

for (const engine of ENGINES) {
  describe(`--stall-timeout, ${engine} engine`, () => {
    let server: TestServer;

    beforeAll(() => {
      server = startTestServer({ engine, stallTimeoutMs: 1_500 });
    });
    afterAll(async () => {
      await server.close();
    });

    const STALLED = "turn stalled: codex sent no event for 1.5 s (--stall-timeout)";

    test("the model silent longer than it: done says timeout, it stalled, and no codex of the turn is left", async () => {
      const abandoned = server.model.abandoned;
      const { frames } = await readSse(await postMessage(server.url, { type: "user_message", message: "sleep 60000 never", id: `stall-model-${engine}` }));
      expect(frames.at(-2)?.event).toBe("turn.started");
      expect(doneOf(frames)).toMatchObject({ status: "timeout", error: STALLED, final_response: null });
      expect(turnProcessesUnder(process.pid)).toEqual([]);
      // codex dropped its request to the model: nothing of the turn goes on.
      await waitFor("codex to drop the model request", () => server.model.abandoned > abandoned);
    });

    test("a command silent longer than it: done says timeout, and the command is gone by then", async () => {
      const command = uniqueSleep();
      const { frames } = await readSse(await postMessage(server.url, { type: "user_message", message: `sh ${command}; echo x`, id: `stall-command-${engine}` }));
      // app-server reports the interrupted command's item before the turn ends; exec does not.
      expect(frames.some((frame) => frame.event === "item.started")).toBe(true);
      expect(doneOf(frames)).toMatchObject({ status: "timeout", error: STALLED });
      expect(processesRunning(command)).toEqual([]);
    });
  });
}

for (const engine of ENGINES) {
  test(`SIGTERM with --shutdown-timeout 1: the server exits 0 and the command does not outlive it, ${engine} engine`, async () => {
    const cli = await startCli(["-a", "127.0.0.1:0", "--engine", engine, "--shutdown-timeout", "1"], scripted.home.env);
    try {
      const command = uniqueSleep();
      const stream = sseReader(await postMessage(cli.url, { type: "user_message", message: `sh ${command}; echo x` }));
      await stream.until((frame) => frame.event === "item.started");
      await running(command);
      expect(await cli.stop("SIGTERM")).toBe(0);
      expect(processesRunning(command)).toEqual([]);
      expect(doneOf((await stream.rest()).frames).status).toBe("cancelled");
    } finally {
      // A failure above must not leave the server running past the test.
      cli.process.kill("SIGKILL");
    }
  }, 20_000);
}

test("app-server killed mid-turn: the turn ends in error, and a command that ignores the hang-up ends with it", async () => {
  const cli = await startCli(["-a", "127.0.0.1:0", "--engine", "app-server"], scripted.home.env);
  try {
    const command = uniqueSleep();
    const stream = sseReader(await postMessage(cli.url, { type: "user_message", message: `sh trap '' HUP TERM; ${command}; echo x` }));
    await stream.until((frame) => frame.event === "item.started");
    await running(command);
    for (const pid of appServersUnder(cli.process.pid)) process.kill(pid, "SIGKILL");
    const { frames } = await stream.rest();
    expect(doneOf(frames).status).toBe("error");
    expect(processesRunning(command)).toEqual([]);
  } finally {
    expect(await cli.stop()).toBe(0);
  }
}, 20_000);
