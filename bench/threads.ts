/**
 * Reading threads back: GET /threads with 1,000 threads in CODEX_HOME, and GET /threads/{id} of a
 * thread of 200 turns, on each engine, in a server process of its own.
 *
 * How the 1,000 threads are made, faithfully and fast. Real turns through the server make one
 * thread in a scratch CODEX_HOME, as codex writes it. 998 copies of its rollout file, each under
 * a new id and creation time (test/fixtures/rollout-copies.ts), go into a fresh CODEX_HOME before
 * any codex has run there: codex's app-server fills its new state database from the rollouts it
 * finds, so the copies are listed like threads it made itself (checked below: paging through the
 * list must reach all 1,000). Then a server on that CODEX_HOME runs the 200 turns of the long
 * thread and one more thread, for real: the thread the read measures has the history codex keeps
 * of real turns. The app-server engine makes them (one `codex exec` per turn would take minutes).
 */
import { startMockModel } from "../test/fixtures/mock-model";
import { copyRollout } from "../test/fixtures/rollout-copies";
import { readSse } from "../test/fixtures/sse";
import { doneOf, postMessage } from "../test/fixtures/turns";
import { waitFor } from "../test/fixtures/wait-for";
import { benchCodexHome, median, round, type ServerProcess, startServerProcess, table } from "./lib";

const THREADS = 1_000;
const LONG_THREAD_TURNS = 200;

type Json = Record<string, any>;

async function turn(url: string, message: string, threadId?: string): Promise<string> {
  const body = { type: "user_message", message, work_dir: "/tmp", ...(threadId && { thread_id: threadId }) };
  const done = doneOf((await readSse(await postMessage(url, body), 60_000)).frames);
  if (done.status !== "completed") throw new Error(`turn did not complete: ${JSON.stringify(done)}`);
  return done.thread_id as string;
}

async function getJson(url: string): Promise<Json> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Json;
}

/** How many threads paging through GET /threads finds. */
async function countListed(url: string): Promise<number> {
  let count = 0;
  let cursor: string | null = null;
  do {
    const page: Json = await getJson(`${url}/threads?limit=100${cursor === null ? "" : `&cursor=${cursor}`}`);
    count += page.threads.length;
    cursor = page.next_cursor;
  } while (cursor !== null);
  return count;
}

/** Median wall time of `rounds` requests, after one to warm up. */
async function timed(url: string, rounds: number): Promise<number> {
  await getJson(url);
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    await getJson(url);
    times.push(performance.now() - started);
  }
  return median(times);
}

export async function threadReads({ rounds }: { rounds: number }): Promise<string> {
  const model = startMockModel();
  const source = benchCodexHome(model.url);
  const home = benchCodexHome(model.url);
  const started = performance.now();
  const env = (dir: string) => ({ ...(process.env as Record<string, string>), MOCK_API_KEY: "test-key", CODEX_HOME: dir, RUST_LOG: "warn" });
  let server: ServerProcess | undefined;
  const rows: Array<Array<string | number>> = [];
  try {
    server = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0", "--engine", "app-server"], env(source.dir));
    const original = await turn(server.url, "run echo copied");
    await turn(server.url, "say and again", original);
    await server.stop();
    server = undefined;

    const now = Date.now();
    for (let i = 0; i < THREADS - 2; i++) copyRollout(source.dir, original, now - (i + 1) * 60_000, home.dir);
    server = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0", "--engine", "app-server"], env(home.dir));
    const long = await turn(server.url, "say turn 1");
    for (let i = 2; i <= LONG_THREAD_TURNS; i++) await turn(server.url, `say turn ${i}`, long);
    await turn(server.url, "say the newest");
    const made = Math.round((performance.now() - started) / 1000);

    for (const engine of ["app-server", "exec"]) {
      if (engine === "exec") {
        await server.stop();
        server = await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0", "--engine", "exec"], env(home.dir));
      }
      const url = server.url;
      const listed = await waitFor("every thread listed", async () => ((await countListed(url)) === THREADS ? THREADS : 0), 30_000);
      const read = await getJson(`${url}/threads/${long}?turns_limit=100`);
      if (read.turns.length !== 100 || read.turns.at(-1).input !== `say turn ${LONG_THREAD_TURNS}`) throw new Error("the long thread reads wrong");
      rows.push(
        [engine, `GET /threads (${listed} threads, 20 a page)`, round(await timed(`${url}/threads`, rounds))],
        [engine, "GET /threads?limit=100", round(await timed(`${url}/threads?limit=100`, rounds))],
        [engine, "GET /threads?q=turn (a search)", round(await timed(`${url}/threads?q=turn`, rounds))],
        [engine, `GET /threads/{id} (${LONG_THREAD_TURNS} turns, 20 a page)`, round(await timed(`${url}/threads/${long}`, rounds))],
        [engine, "GET /threads/{id}?turns_limit=100", round(await timed(`${url}/threads/${long}?turns_limit=100`, rounds))],
      );
    }
    return [
      `${THREADS} threads in CODEX_HOME (${THREADS - 2} of them copies of a real rollout, see bench/threads.ts), one of ${LONG_THREAD_TURNS} real turns; made in ${made} s. Median of ${rounds} requests each, after one to warm up; target ≤ 100 ms.`,
      "",
      table(["engine", "request", "median (ms)"], rows),
    ].join("\n");
  } finally {
    await server?.stop();
    await model.stop();
    source.remove();
    home.remove();
  }
}
