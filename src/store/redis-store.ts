import { RedisClient } from "bun";
import type { Logger } from "../log";
import type { RunEvent } from "../runs/event-log";
import type { RunSummary } from "../schemas";
import {
  type AppendResult,
  type ClusterStore,
  type ControlCommand,
  type ControlReply,
  type RunRecord,
  type StoreState,
  StoreUnavailableError,
  type ThreadLease,
} from "./cluster-store";

/** A command not answered within this fails: new turns get their 503 well within 2 s. */
const COMMAND_TIMEOUT_MS = 1_500;
/** How often a replica says it lives, renews its slots and, when the store is down, tries to reconnect. */
export const HEARTBEAT_MS = 2_000;
/** A replica not heard of for this long is lost: a survivor ends its runs (within 15 s with the sweep). */
export const LIVENESS_TTL_MS = 8_000;
/** A cluster slot its owner stops renewing frees itself after this. */
const SLOT_TTL_MS = 20_000;
/** How long a blocking read waits before it looks again at which streams to follow. */
const BLOCK_MS = 1_000;
/** What one read brings at most: a replay goes out in pieces, as the in-memory log hands them. */
export const READ_BATCH = 512;
/** Commands and replies are short-lived: a control stream keeps about this many. */
const CONTROL_MAXLEN = 1_000;
/** How many runs GET /runs lists at most, the newest: a replica alone keeps 1,000 finished ones and its running ones. */
const RUNS_INDEXED = 2_000;
/** A thread's lease outlives any turn; it is kept this long after its last claim. */
const THREAD_LEASE_TTL_MS = 30 * 24 * 3_600_000;

export type StoreObserver = {
  storeError(operation: string): void;
  storeState(state: StoreState): void;
};

export type RedisStoreOptions = {
  url: string;
  replicaId: string;
  /** How long a finished run's stream and record are kept, as --run-retention. */
  retentionMs: number;
  /** About how many events a run's stream keeps (MAXLEN ~), as the in-memory log. */
  maxEvents: number;
  log: Logger;
  observer?: StoreObserver;
};

/** The URL to show: its password replaced (redis://user:***@host). */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return "(unparsable URL)";
  }
}

/** `ms-seq` stream ids, compared as Redis does. */
function compareIds(a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split("-").map(Number);
  const [bMs = 0, bSeq = 0] = b.split("-").map(Number);
  return aMs - bMs || aSeq - bSeq;
}

type RawEntry = [id: string, fields: string[]];

const APPEND_RESULTS = { 1: "written", 0: "ended_elsewhere", [-1]: "replaced" } as const;

/** A stream entry as a run event: its SSE id is the entry id's first part. */
function toRunEvent([id, fields]: RawEntry): RunEvent {
  return { id: Number(id.slice(0, id.indexOf("-"))), event: fields[1] as string, data: fields[3] as string };
}

const entryId = (sseId: number) => `${sseId}-0`;

/** A run's record from HMGET owner, summary, tenant. */
function recordOf(fields: unknown): RunRecord | undefined {
  const [owner, summary, tenant] = fields as [string | null, string | null, string | null];
  if (owner === null || summary === null) return undefined;
  return { owner, summary: JSON.parse(summary), ...(tenant !== null && { tenant }) };
}

/** XREAD answers a map in RESP3 and a list of pairs in RESP2. */
function streamsOf(reply: unknown): [string, RawEntry[]][] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) return reply as [string, RawEntry[]][];
  return Object.entries(reply as Record<string, RawEntry[]>);
}

/* Lua scripts: each runs atomically, so replicas racing for the same thing cannot both win. */

/** KEYS: stream, record, runs index, owner's runs. ARGV: owner, summary, start time, run id, tenant or ''. A run id used again starts afresh. */
const PUBLISH_RUN = `
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'summary', ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], 'tenant', ARGV[5]) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[4])
return 1`;

/**
 * KEYS: stream, record, owner's runs, then the slots (the cluster's, a tenant's) the run frees once
 * finished. ARGV: maxlen, retention ms, summary or '', finished,
 * run id, owner, then id/event/data triples. Returns 1 when written, 0 when the run was ended
 * elsewhere (taken for lost), -1 when its id has been used again since (its record is another's).
 */
const APPEND_EVENTS = `
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[6] then return -1 end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if last and last[2][2] == 'done' then return 0 end
for i = 7, #ARGV, 3 do
  redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[i], 'e', ARGV[i + 1], 'd', ARGV[i + 2])
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'summary', ARGV[3]) end
if ARGV[4] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('SREM', KEYS[3], ARGV[5])
  for i = 4, #KEYS do redis.call('ZREM', KEYS[i], ARGV[5]) end
end
return 1`;

/** KEYS: stream, record, slots, owner's runs. ARGV: done data, summary, retention ms, run id. */
const END_LOST_RUN = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
redis.call('SREM', KEYS[4], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[4])
if last and last[2][2] == 'done' then return 0 end
local n = 0
if last then n = tonumber(string.match(last[1], '^(%d+)')) end
redis.call('XADD', KEYS[1], (n + 1) .. '-0', 'e', 'done', 'd', ARGV[1])
redis.call('HSET', KEYS[2], 'summary', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1`;

/** KEYS: lease. ARGV: this replica, liveness key prefix, ttl. The epoch grows whenever the thread changes hands. */
const CLAIM_THREAD = `
local owner = redis.call('HGET', KEYS[1], 'owner')
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if owner and owner ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. owner) == 1 then return -1 end
if owner ~= ARGV[1] then
  epoch = epoch + 1
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', epoch)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return epoch`;

/**
 * KEYS: slots. ARGV: run id, limit, ttl, the id of the run it replaces ("" for none). Expired slots
 * go first; Redis's clock, so replicas' clocks do not matter.
 */
const TAKE_SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local successor = ARGV[4] ~= '' and redis.call('ZSCORE', KEYS[1], ARGV[4])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and not successor and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1`;

/** KEYS: slots. ARGV: ttl, then run ids: the slots this replica still holds live on. */
const RENEW_SLOTS = `
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i]) end
return 1`;

const key = {
  events: (run: string) => `codex:run:${run}:events`,
  record: (run: string) => `codex:run:${run}`,
  runs: "codex:runs",
  replicas: "codex:replicas",
  liveness: (replica: string) => `codex:replica:${replica}`,
  livenessPrefix: "codex:replica:",
  replicaRuns: (replica: string) => `codex:replica:${replica}:runs`,
  control: (replica: string) => `codex:replica:${replica}:control`,
  wake: (replica: string) => `codex:replica:${replica}:wake`,
  reply: (nonce: string) => `codex:reply:${nonce}`,
  thread: (thread: string) => `codex:thread:${thread}`,
  slots: "codex:slots",
  /** A tenant's turn slots (its max_concurrent_turns across the cluster). */
  tenantSlots: (tenant: string) => `codex:slots:tenant:${tenant}`,
  /** Which tenant each thread belongs to: kept as long as the threads are, no expiry. */
  threadTenants: "codex:thread-tenants",
};

type Waiter = { key: string; after: string; deliver(entries: RawEntry[]): void };

/**
 * The shared store on Redis, through Bun's client. Commands fail at once while disconnected (no
 * offline queue) and after COMMAND_TIMEOUT_MS otherwise; a heartbeat reconnects. Blocking reads
 * run on a connection of their own: one loop per replica follows every stream it waits on.
 */
export class RedisStore implements ClusterStore {
  private readonly client: RedisClient;
  private readonly blocker: RedisClient;
  private current: StoreState = "down";
  private closed = false;
  private readonly heartbeat: ReturnType<typeof setInterval>;
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** The streams and positions the blocking read waits on now, while it does. */
  private blocking: Map<string, string> | undefined;
  private wakeLoop: (() => void) | undefined;
  private readonly scripts = new Map<string, string>();
  /** Slots this replica holds, renewed by the heartbeat. */
  /** The turn slots this replica holds and renews: run ids by the sorted set they are in (the cluster's, a tenant's). */
  private readonly ownSlots = new Map<string, Set<string>>();
  /** When the connection last came up: a replica just back does not judge others until it has heard from them. */
  private upSince = 0;
  readonly ready: Promise<void>;
  /**
   * Where this replica's commands start: the end of its control stream when it first reached
   * Redis, before it said it lives. Older commands were for its previous life; any later one is
   * read, however late the command loop starts reading.
   */
  private readonly controlFrom: Promise<string>;
  private startControlAt!: (position: string) => void;
  private controlStarted = false;

  constructor(private readonly options: RedisStoreOptions) {
    const clientOptions = { enableOfflineQueue: false, autoReconnect: false, connectionTimeout: COMMAND_TIMEOUT_MS };
    this.client = new RedisClient(options.url, clientOptions);
    this.blocker = new RedisClient(options.url, clientOptions);
    this.client.onclose = () => this.setState("down");
    this.controlFrom = new Promise((resolve) => (this.startControlAt = resolve));
    this.ready = this.beat();
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
    void this.followLoop();
  }

  get replicaId(): string {
    return this.options.replicaId;
  }

  get state(): StoreState {
    return this.current;
  }


  private setState(state: StoreState): void {
    if (state === this.current || this.closed) return;
    this.current = state;
    if (state === "up") this.upSince = performance.now();
    this.options.observer?.storeState(state);
    if (state === "up") this.options.log.info("shared store connected", { replica: this.replicaId });
    else this.options.log.warn("shared store unreachable; new turns get 503 until it is back", { replica: this.replicaId });
  }

  /** Says this replica lives, renews its slots; reconnects first when the connection is down. */
  private async beat(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.client.connected) await this.connect(this.client);
      const { replicaId } = this;
      if (!this.controlStarted) {
        const [last] = (await this.call("XREVRANGE", [key.control(replicaId), "+", "-", "COUNT", "1"])) as RawEntry[];
        this.controlStarted = true;
        this.startControlAt(last?.[0] ?? "0-0");
      }
      await Promise.all([
        this.call("SET", [key.liveness(replicaId), "1", "PX", String(LIVENESS_TTL_MS)]),
        this.call("SADD", [key.replicas, replicaId]),
        ...[...this.ownSlots].filter(([, runs]) => runs.size > 0).map(([slots, runs]) => this.script(RENEW_SLOTS, [slots], [String(SLOT_TTL_MS), ...runs])),
      ]);
      this.setState("up");
    } catch (err) {
      this.failed("heartbeat", err);
    }
  }

  /** Opens a connection, counting a failure as the commands' are counted. */
  private async connect(client: RedisClient): Promise<void> {
    try {
      await client.connect();
    } catch (err) {
      this.options.observer?.storeError("connect");
      throw err;
    }
  }

  /** A failure of the store's own loops (heartbeat, blocking read, replies): logged, and the store marked down when it is. */
  private failed(operation: string, err: unknown): void {
    this.options.log.debug("shared store command failed", { operation, error: (err as Error).message });
    if (!this.client.connected || err instanceof StoreUnavailableError) this.setState("down");
  }

  /** One command, failing fast when disconnected and after COMMAND_TIMEOUT_MS when Redis does not answer. */
  private async call(command: string, args: string[]): Promise<any> {
    if (this.closed || !this.client.connected) {
      this.options.observer?.storeError(command.toLowerCase());
      throw new StoreUnavailableError("not connected");
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Silent that long, the connection is dead or cut off (a network split need not close
        // it): closed, so that the heartbeat opens a fresh one instead of waiting for TCP.
        this.client.close();
        reject(new StoreUnavailableError(`no answer within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.client.send(command, args), deadline]);
    } catch (err) {
      // A script not loaded yet is the ordinary way to load it, not a failure.
      if (!String((err as Error).message).startsWith("NOSCRIPT")) this.options.observer?.storeError(command.toLowerCase());
      if (!(err instanceof StoreUnavailableError) && !this.client.connected) {
        this.setState("down");
        throw new StoreUnavailableError((err as Error).message);
      }
      if (err instanceof StoreUnavailableError) this.setState("down");
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs a script by its hash, loading it once (again after a Redis restart). */
  private async script(source: string, keys: string[], args: string[]): Promise<any> {
    let sha = this.scripts.get(source);
    if (sha === undefined) {
      sha = new Bun.CryptoHasher("sha1").update(source).digest("hex");
      this.scripts.set(source, sha);
    }
    try {
      return await this.call("EVALSHA", [sha, String(keys.length), ...keys, ...args]);
    } catch (err) {
      if (!String((err as Error).message).startsWith("NOSCRIPT")) throw err;
      return await this.call("EVAL", [source, String(keys.length), ...keys, ...args]);
    }
  }

  async publishRun(id: string, summary: RunSummary, tenant: string | undefined): Promise<void> {
    const keys = [key.events(id), key.record(id), key.runs, key.replicaRuns(this.replicaId)];
    await Promise.all([
      this.script(PUBLISH_RUN, keys, [this.replicaId, JSON.stringify(summary), String(Date.parse(summary.started_at)), id, tenant ?? ""]),
      // The index keeps the newest; listing drops those whose record has expired.
      this.call("ZREMRANGEBYRANK", [key.runs, "0", String(-RUNS_INDEXED - 1)]),
    ]);
  }

  async appendEvents(id: string, events: RunEvent[], summary: RunSummary | undefined, finished: boolean): Promise<AppendResult> {
    const args = [String(this.options.maxEvents), String(this.options.retentionMs), summary ? JSON.stringify(summary) : "", finished ? "1" : "0", id, this.replicaId];
    for (const event of events) args.push(entryId(event.id), event.event, event.data);
    // The run's slots go in the same step as its end is written: whoever sees it ended may take one.
    const held = [...this.ownSlots].filter(([slots, runs]) => slots !== key.slots && runs.has(id)).map(([slots]) => slots);
    const keys = [key.events(id), key.record(id), key.replicaRuns(this.replicaId), key.slots, ...held];
    const result = APPEND_RESULTS[(await this.script(APPEND_EVENTS, keys, args)) as 1 | 0 | -1];
    if (finished) this.forgetSlots(id);
    // A run ended elsewhere, or whose id runs again elsewhere, frees what it holds here.
    else if (result !== "written") await this.releaseSlot(id);
    return result;
  }

  async run(id: string): Promise<RunRecord | undefined> {
    return recordOf(await this.call("HMGET", [key.record(id), "owner", "summary", "tenant"]));
  }

  async runs(): Promise<RunRecord[]> {
    const ids = (await this.call("ZRANGE", [key.runs, String(-RUNS_INDEXED), "-1"])) as string[];
    const records = (await Promise.all(ids.map((id) => this.call("HMGET", [key.record(id), "owner", "summary", "tenant"])))).map(recordOf);
    const gone = ids.filter((_, index) => records[index] === undefined);
    if (gone.length > 0) await this.call("ZREM", [key.runs, ...gone]);
    return records.filter((record): record is RunRecord => record !== undefined);
  }

  async readEvents(id: string, afterId: number, count: number): Promise<RunEvent[]> {
    const entries = (await this.call("XRANGE", [key.events(id), `(${entryId(afterId)}`, "+", "COUNT", String(count)])) as RawEntry[];
    return entries.map(toRunEvent);
  }

  async lastEvent(id: string): Promise<RunEvent | undefined> {
    const [last] = (await this.call("XREVRANGE", [key.events(id), "+", "-", "COUNT", "1"])) as RawEntry[];
    return last && toRunEvent(last);
  }

  async followEvents(id: string, afterId: number, signal: AbortSignal): Promise<RunEvent[]> {
    return (await this.follow(key.events(id), entryId(afterId), signal)).map(toRunEvent);
  }

  /** Entries of `stream` after `after`, once there are any; [] when `signal` aborts first. */
  private follow(stream: string, after: string, signal: AbortSignal): Promise<RawEntry[]> {
    if (signal.aborted) return Promise.resolve([]);
    return new Promise((resolve) => {
      const waiters = this.waiters.get(stream) ?? new Set();
      this.waiters.set(stream, waiters);
      const done = (entries: RawEntry[]) => {
        waiters.delete(waiter);
        if (waiters.size === 0) this.waiters.delete(stream);
        signal.removeEventListener("abort", onAbort);
        resolve(entries);
      };
      const waiter: Waiter = { key: stream, after, deliver: done };
      const onAbort = () => done([]);
      signal.addEventListener("abort", onAbort, { once: true });
      waiters.add(waiter);
      this.wakeLoop?.();
      // A blocked read that does not cover this position must look again.
      const blockedAt = this.blocking?.get(stream);
      if (this.blocking && (blockedAt === undefined || compareIds(after, blockedAt) < 0)) this.unblock();
    });
  }

  /**
   * Wakes the blocked read so that it looks again: an entry in this replica's wake stream, which
   * that read always covers from the last entry it saw. Unlike CLIENT UNBLOCK, a wake that reaches
   * Redis before the read does is not lost: the read then answers at once.
   */
  private unblock(): void {
    this.call("XADD", [key.wake(this.replicaId), "MAXLEN", "~", "100", "*", "w", "1"]).catch(() => {});
  }

  /** The one blocking read of this replica, over every stream someone waits on, from the earliest position wanted. */
  private async followLoop(): Promise<void> {
    const wake = key.wake(this.replicaId);
    let woken = "0-0";
    while (!this.closed) {
      if (this.waiters.size === 0) {
        await new Promise<void>((resolve) => (this.wakeLoop = resolve));
        this.wakeLoop = undefined;
        continue;
      }
      try {
        if (!this.blocker.connected) await this.connect(this.blocker);
        // From here to the read, nothing awaits: a waiter that comes later finds `blocking` set and wakes the read.
        const positions = new Map<string, string>();
        for (const [stream, waiters] of this.waiters) {
          for (const waiter of waiters) {
            const known = positions.get(stream);
            if (known === undefined || compareIds(waiter.after, known) < 0) positions.set(stream, waiter.after);
          }
        }
        this.blocking = positions;
        const streams = [...positions.keys(), wake];
        const ids = [...positions.values(), woken];
        const reply = await this.blockingRead(["COUNT", String(READ_BATCH), "BLOCK", String(BLOCK_MS), "STREAMS", ...streams, ...ids]);
        this.blocking = undefined;
        let delivered = false;
        for (const [stream, entries] of streamsOf(reply)) {
          if (stream === wake) {
            woken = (entries.at(-1) as RawEntry)[0];
            continue;
          }
          for (const waiter of [...(this.waiters.get(stream) ?? [])]) {
            const newer = entries.filter(([id]) => compareIds(id, waiter.after) > 0);
            if (newer.length > 0) {
              waiter.deliver(newer);
              delivered = true;
            }
          }
        }
        // A follower that got entries asks for the next ones as soon as it has passed them on. Read
        // again only once it could have: a read that left its stream out would have to be woken
        // when it did (one more XADD and XREAD for each event that comes on its own).
        if (delivered) await new Promise<void>((resolve) => setImmediate(resolve));
      } catch (err) {
        this.blocking = undefined;
        if (this.closed) return;
        this.failed("follow", err);
        await Bun.sleep(HEARTBEAT_MS / 4);
      }
    }
  }

  /**
   * XREAD on the blocking connection. Redis answers within BLOCK_MS; a connection that stays
   * silent longer is dead or cut off (a network split need not close it), so it is closed and the
   * next read opens a fresh one instead of waiting for TCP to notice.
   */
  private async blockingRead(args: string[]): Promise<unknown> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const silent = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.blocker.close();
        reject(new StoreUnavailableError("the blocking read got no answer"));
      }, BLOCK_MS + COMMAND_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.blocker.send("XREAD", args), silent]);
    } catch (err) {
      this.options.observer?.storeError("xread");
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async send(owner: string, command: ControlCommand, reply: boolean, timeoutMs = 0): Promise<any> {
    const nonce = reply ? crypto.randomUUID() : "";
    const waited = new AbortController();
    const timer = reply ? setTimeout(() => waited.abort(), timeoutMs) : undefined;
    // Read before sending: the answer cannot come before the question.
    const answer = reply ? this.follow(key.reply(nonce), "0-0", waited.signal) : undefined;
    try {
      await this.call("XADD", [key.control(owner), "MAXLEN", "~", String(CONTROL_MAXLEN), "*", "c", JSON.stringify(command), "r", nonce]);
      if (!answer) return;
      const [entry] = await answer;
      return entry && (JSON.parse(entry[1][1] as string) as ControlReply);
    } finally {
      clearTimeout(timer);
      waited.abort();
    }
  }

  onCommand(handler: (command: ControlCommand) => Promise<ControlReply>): void {
    void this.commandLoop(handler);
  }

  private async commandLoop(handler: (command: ControlCommand) => Promise<ControlReply>): Promise<void> {
    const control = key.control(this.replicaId);
    const forever = new AbortController().signal;
    let position = await this.controlFrom;
    while (!this.closed) {
      for (const [id, fields] of await this.follow(control, position, forever)) {
        position = id;
        const command = JSON.parse(fields[1] as string) as ControlCommand;
        const nonce = fields[3] as string;
        void handler(command)
          .then(async (answer) => {
            if (nonce === "") return;
            const replyKey = key.reply(nonce);
            await Promise.all([this.call("XADD", [replyKey, "*", "a", JSON.stringify(answer)]), this.call("PEXPIRE", [replyKey, "30000"])]);
          })
          .catch((err) => this.failed("reply", err));
      }
    }
  }

  async threadLease(threadId: string): Promise<ThreadLease | undefined> {
    const [owner, epoch] = (await this.call("HMGET", [key.thread(threadId), "owner", "epoch"])) as [string | null, string | null];
    if (owner === null) return undefined;
    const ownerAlive = owner === this.replicaId || (await this.call("EXISTS", [key.liveness(owner)])) === 1;
    return { owner, epoch: Number(epoch), ownerAlive };
  }

  async claimThread(threadId: string): Promise<number | undefined> {
    const epoch = (await this.script(CLAIM_THREAD, [key.thread(threadId)], [this.replicaId, key.livenessPrefix, String(THREAD_LEASE_TTL_MS)])) as number;
    return epoch < 0 ? undefined : epoch;
  }

  async takeSlot(runId: string, limit: number, tenant?: string, replaces?: string): Promise<boolean> {
    const slots = tenant === undefined ? key.slots : key.tenantSlots(tenant);
    const taken = (await this.script(TAKE_SLOT, [slots], [runId, String(limit), String(SLOT_TTL_MS), replaces ?? ""])) === 1;
    if (taken) {
      const runs = this.ownSlots.get(slots) ?? new Set<string>();
      this.ownSlots.set(slots, runs.add(runId));
    }
    return taken;
  }

  async releaseSlot(runId: string): Promise<void> {
    await Promise.all(this.forgetSlots(runId).map((slots) => this.call("ZREM", [slots, runId])));
  }

  /** Stops renewing the run's slots; returns the sets it held them in. */
  private forgetSlots(runId: string): string[] {
    const held = [...this.ownSlots].filter(([, runs]) => runs.delete(runId)).map(([slots]) => slots);
    for (const [slots, runs] of this.ownSlots) if (runs.size === 0) this.ownSlots.delete(slots);
    return held;
  }

  async threadTenant(threadId: string): Promise<string | undefined> {
    return ((await this.call("HGET", [key.threadTenants, threadId])) as string | null) ?? undefined;
  }

  async claimThreadTenant(threadId: string, tenant: string): Promise<void> {
    await this.call("HSETNX", [key.threadTenants, threadId, tenant]);
  }

  async forgetThreadTenant(threadId: string): Promise<void> {
    await this.call("HDEL", [key.threadTenants, threadId]);
  }

  async lostRuns(): Promise<{ replica: string; runs: string[] }[]> {
    // A replica that was cut off itself cannot tell the lost from those that could not renew either.
    if (this.current !== "up" || performance.now() - this.upSince < LIVENESS_TTL_MS) return [];
    const replicas = ((await this.call("SMEMBERS", [key.replicas])) as string[]).filter((replica) => replica !== this.replicaId);
    const alive = (await Promise.all(replicas.map((replica) => this.call("EXISTS", [key.liveness(replica)])))) as number[];
    const lost = replicas.filter((_, index) => alive[index] === 0);
    return Promise.all(lost.map(async (replica) => ({ replica, runs: (await this.call("SMEMBERS", [key.replicaRuns(replica)])) as string[] })));
  }

  async endLostRun(id: string, done: string, summary: RunSummary): Promise<boolean> {
    const record = await this.run(id);
    const keys = [key.events(id), key.record(id), key.slots, key.replicaRuns(record?.owner ?? "")];
    return (await this.script(END_LOST_RUN, keys, [done, JSON.stringify(summary), String(this.options.retentionMs), id])) === 1;
  }

  async forgetReplica(replica: string): Promise<void> {
    if ((await this.call("SCARD", [key.replicaRuns(replica)])) !== 0) return;
    // A replica with the same id that comes back starts from an empty control stream.
    await Promise.all([this.call("SREM", [key.replicas, replica]), this.call("DEL", [key.control(replica), key.wake(replica)])]);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.wakeLoop?.();
    for (const waiters of this.waiters.values()) for (const waiter of waiters) waiter.deliver([]);
    this.client.close();
    this.blocker.close();
  }
}
