/**
 * Replicas through Redis (one redis-server started here, on loopback):
 *   (1) turn time, real server processes and codex against the scripted model: one in-memory
 *       server vs two replicas, a new thread on one replica and a thread continued through the
 *       other (the turn runs on the owner, streamed through the receiver); interleaved, medians;
 *   (2) SSE events/s through Redis: a fake engine floods `item.updated` on one replica, a client
 *       of the other follows the run live (in-process replicas, as test/cluster-runs.test.ts);
 *   (3) replaying a 10,000-event run from the other replica.
 */
import type { Engine, ThreadEvent } from "../src/engine/types";
import { startInProcessReplica } from "../test/fixtures/cluster-replica";
import { startMockModel } from "../test/fixtures/mock-model";
import { startRedis } from "../test/fixtures/redis-server";
import { descendantsNamed } from "../test/fixtures/processes";
import { postMessage } from "../test/fixtures/turns";
import { waitFor } from "../test/fixtures/wait-for";
import { benchCodexHome, median, round, startServerProcess, table } from "./lib";
import { floodEngine } from "./sse-forwarding";

/** Posts a turn and reads its stream to `done`: the ms it took, and the thread it ran on. */
async function turn(url: string, body: Record<string, unknown>): Promise<{ ms: number; threadId: string }> {
  const started = performance.now();
  const text = await (await postMessage(url, { type: "user_message", ...body })).text();
  const ms = performance.now() - started;
  const done = text.slice(text.lastIndexOf("event: done\n"));
  if (!done.startsWith("event: done\n")) throw new Error(`no done: ${text.slice(-300)}`);
  const threadId = /"thread_id":"([^"]+)"/.exec(done)?.[1];
  if (!threadId || !done.includes('"status":"completed"')) throw new Error(`turn failed: ${done}`);
  return { ms, threadId };
}

async function turnTimes(redisUrl: string, turns: number): Promise<string> {
  const model = startMockModel();
  const homes = [benchCodexHome(model.url), benchCodexHome(model.url), benchCodexHome(model.url)];
  const env = (index: number) => ({ ...(process.env as Record<string, string>), ...(homes[index] as { env: Record<string, string> }).env, RUST_LOG: "warn" });
  const cli = ["bun", "src/cli.ts", "-a", "127.0.0.1:0"];
  const single = await startServerProcess(cli, env(0));
  const a = await startServerProcess([...cli, "--redis-url", redisUrl, "--replica-id", "bench-a"], env(1));
  const b = await startServerProcess([...cli, "--redis-url", redisUrl, "--replica-id", "bench-b"], env(2));
  const times: TurnTimes = { singleNew: [], replicaNew: [], singleContinued: [], throughOther: [] };
  try {
    // Warm-up, and the threads to continue: one on the single server, one owned by replica a.
    const singleThread = (await turn(single.url, { message: "say hi" })).threadId;
    const ownedByA = (await turn(a.url, { message: "say hi" })).threadId;
    await turn(b.url, { message: "say hi", thread_id: ownedByA });
    for (let i = 0; i < turns; i++) {
      const pairs: Array<[number[], () => Promise<{ ms: number }>]> = [
        [times.singleNew, () => turn(single.url, { message: "say hi" })],
        [times.replicaNew, () => turn(a.url, { message: "say hi" })],
        [times.singleContinued, () => turn(single.url, { message: "say hi", thread_id: singleThread })],
        [times.throughOther, () => turn(b.url, { message: "say hi", thread_id: ownedByA })],
      ];
      // Each pair's order alternates, so that drift in the machine's speed hits both sides alike;
      // and a thread never gets two turns back to back, where the second waits for the first's
      // `codex exec` to exit (reversing the whole list put the replicas' continued turns back to
      // back every other round: +8 to +12 ms on their median, none of it Redis's).
      const [singleNew, replicaNew, singleContinued, throughOther] = pairs as [(typeof pairs)[number], (typeof pairs)[number], (typeof pairs)[number], (typeof pairs)[number]];
      const order = i % 2 === 0 ? pairs : [replicaNew, singleNew, throughOther, singleContinued];
      for (const [into, run] of order) {
        // Each turn starts once the last one's codex has exited: on 2 cores, its exit (~20 ms of
        // CPU) overlapping the next turn slowed whichever came next, and not evenly.
        await waitFor("no codex running", () => [single, a, b].every((server) => descendantsNamed(server.pid, "codex").length === 0), 10_000);
        into.push((await run()).ms);
      }
    }
  } finally {
    await Promise.all([single.stop(), a.stop(), b.stop()]);
    await model.stop();
    for (const home of homes) home.remove();
  }
  return compared(`Turn time, \`say hi\` with codex and the scripted model, ${turns} turns of each kind, interleaved; medians.`, times, 1);
}

type TurnTimes = { singleNew: number[]; replicaNew: number[]; singleContinued: number[]; throughOther: number[] };

/** One in-memory server against two replicas, as a table of medians. */
function compared(title: string, times: TurnTimes, digits: number): string {
  const row = (name: string, one: number[], two: number[]) => [name, round(median(one), digits), round(median(two), digits), round(median(two) - median(one), digits)];
  return [
    title,
    "",
    table(
      ["", "one in-memory server (ms)", "two replicas via Redis (ms)", "difference (ms)"],
      [
        row("a new thread (on the replica posted to)", times.singleNew, times.replicaNew),
        row("a thread continued (through the other replica)", times.singleContinued, times.throughOther),
      ],
    ),
  ].join("\n");
}

/** An in-process replica (see test/fixtures/cluster-replica.ts), served by Bun.serve. */
async function inProcessReplica(redisUrl: string | undefined, id: string, engine: Engine) {
  const replica = await startInProcessReplica(redisUrl, id, engine);
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: replica.app.fetch, idleTimeout: 0 });
  return {
    url: `http://127.0.0.1:${server.port}`,
    async close() {
      await server.stop(true);
      replica.close();
    },
  };
}

/** A turn of five events that completes at once: what is measured is the server, not codex. */
const quickEngine: Engine = {
  async *runTurn(request) {
    const threadId = request.threadId ?? crypto.randomUUID();
    yield { type: "thread.started", thread_id: threadId } satisfies ThreadEvent;
    yield { type: "turn.started" } satisfies ThreadEvent;
    yield { type: "item.completed", item: { id: "item_0", type: "agent_message", text: "hi" } } satisfies ThreadEvent;
    yield {
      type: "turn.completed",
      usage: { input_tokens: 1, cached_input_tokens: 0, cache_write_input_tokens: 0, output_tokens: 1, reasoning_output_tokens: 0 },
    } satisfies ThreadEvent;
  },
};

/** The server's own share of a turn's time: a fake engine, one in-memory server vs two replicas via Redis, in this process. */
async function serverOverhead(redisUrl: string, turns: number): Promise<string> {
  const single = await inProcessReplica(undefined, "bench-single", quickEngine);
  const owner = await inProcessReplica(redisUrl, "bench-quick-owner", quickEngine);
  const other = await inProcessReplica(redisUrl, "bench-quick-other", quickEngine);
  const times: TurnTimes = { singleNew: [], replicaNew: [], singleContinued: [], throughOther: [] };
  try {
    const singleThread = (await turn(single.url, { message: "hi" })).threadId;
    const ownedByOwner = (await turn(owner.url, { message: "hi" })).threadId;
    for (let i = 0; i < turns; i++) {
      times.singleNew.push((await turn(single.url, { message: "hi" })).ms);
      times.replicaNew.push((await turn(owner.url, { message: "hi" })).ms);
      times.singleContinued.push((await turn(single.url, { message: "hi", thread_id: singleThread })).ms);
      times.throughOther.push((await turn(other.url, { message: "hi", thread_id: ownedByOwner })).ms);
    }
  } finally {
    await Promise.all([single.close(), owner.close(), other.close()]);
  }
  return compared(
    `The server's own share: a fake engine whose turns end at once (five events), servers in this process; ${turns} turns of each kind, interleaved; medians.`,
    times,
    2,
  );
}

/** Reads an SSE body to its end: how many frames, and the last frame's id. */
async function countFrames(response: Response): Promise<{ frames: number; lastId: number }> {
  const text = await response.text();
  return { frames: text.split("\n\n").length - 1, lastId: Number(/id: (\d+)\n\n$/.exec(text)?.[1]) };
}

async function throughRedis(redisUrl: string, events: number, rounds: number): Promise<string> {
  const owner = await inProcessReplica(redisUrl, "bench-flood-owner", floodEngine(events));
  const other = await inProcessReplica(redisUrl, "bench-flood-other", floodEngine(0));
  const rates: number[] = [];
  const replays: number[] = [];
  let replayed = 0;
  try {
    for (let i = 0; i < rounds; i++) {
      const id = `flood-${i}-${Date.now()}`;
      const started = performance.now();
      const posted = postMessage(owner.url, { type: "user_message", id, message: "flood" });
      // The other replica's client follows from the start, while the owner writes.
      const followed = await (async () => {
        for (;;) {
          const response = await fetch(`${other.url}/runs/${id}/events`);
          if (response.status === 200) return response;
          await response.body?.cancel();
          await Bun.sleep(1);
        }
      })();
      const [remote] = await Promise.all([countFrames(followed), posted.then((response) => response.arrayBuffer())]);
      const seconds = (performance.now() - started) / 1000;
      if (remote.lastId !== events + 3) throw new Error(`the follower ended at ${remote.lastId}, not at done (${events + 3})`);
      rates.push(remote.frames / seconds);
      // A replay of the finished run, from the other replica.
      const replayStarted = performance.now();
      const replay = await countFrames(await fetch(`${other.url}/runs/${id}/events`));
      replays.push(performance.now() - replayStarted);
      replayed = replay.frames;
    }
  } finally {
    await owner.close();
    await other.close();
  }
  return [
    `Through Redis: a fake engine on one replica floods ${events} \`item.updated\` events; a client of the other replica follows the run live, then replays it whole (Redis keeps ~10,000 events a run: MAXLEN ~). ${rounds} rounds, medians.`,
    "",
    table(
      ["events per run", "followed from the other replica (events/s)", "replay from the other replica: events", "replay (ms)"],
      [[events, Math.round(median(rates)), replayed, round(median(replays))]],
    ),
  ].join("\n");
}

export async function cluster({ turns, events, rounds }: { turns: number; events: number; rounds: number }): Promise<string> {
  if (!Bun.which("redis-server")) return "Replicas: skipped, `redis-server` is not installed (`apt-get install redis-server`).";
  const redis = await startRedis();
  try {
    return [await turnTimes(redis.url, turns), "", await serverOverhead(redis.url, turns * 10), "", await throughRedis(redis.url, events, rounds)].join("\n");
  } finally {
    await redis.kill();
  }
}
