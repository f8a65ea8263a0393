import type { ApprovalDecision, Engine } from "../engine/types";
import { ApiError } from "../errors";
import type { Logger } from "../log";
import type { DoneData, RunSummary } from "../schemas";
import {
  type ClusterStore,
  type ControlCommand,
  type ControlReply,
  type OnBusy,
  type RunRecord,
  StoreUnavailableError,
} from "../store/cluster-store";
import { canSee, type Viewer } from "../tenants/tenant";
import type { RunEvent } from "./event-log";
import { type RegistryOptions, RunIdInUseError, RunIdTakenError, RunRegistry, TenantLimitError } from "./registry";
import type { Run, TurnInput } from "./run";

/** Agent-message deltas wait this long to go out together: one write per run per 50 ms at most. */
export const DELTA_BATCH_MS = 50;
/** What a replica reading a run's stream gets at once, as the in-memory log hands it over. */
const READ_BATCH = 512;
/** How long a cancel or an approval waits for the owner to answer (it acts within 1 s). */
const CONTROL_TIMEOUT_MS = 2_000;
/** How long a forwarded turn waits for the owner to take it: an edit waits for the turn it replaces to end. */
const START_TIMEOUT_MS = 30_000;
/** How long a watcher waits after a failed read before it tries the store again. */
const RETRY_MS = 500;
/** How long a `left` waits for its `watch`: the two are sent one after the other. */
const LEFT_EARLY_MS = 60_000;
/** How often a replica looks for lost replicas' runs. */
const SWEEP_MS = 2_000;

/** The cluster-wide limit (--cluster-max-turns) is reached. */
export class ClusterLimitError extends Error {
  constructor(readonly limit: number) {
    super(`the cluster's limit of ${limit} running turns is reached; try again later`);
  }
}

/** The thread is held by a replica that is gone, or does not answer: its rollout cannot be reached from here. */
export class ThreadUnavailableError extends Error {}

/** The owner of a run did not answer a command in time. */
export class ReplicaUnavailableError extends Error {
  constructor(owner: string) {
    super(`replica ${owner}, which runs this turn, did not answer; try again later`);
  }
}

/** No replica holds this thread, and its rollout is not stored here. */
export class ThreadNotStoredError extends Error {
  constructor(threadId: string) {
    super(`No codex thread ${threadId} is stored here.`);
  }
}

/** The turn a `user_edit` makes of the turn it replaces, as that turn ended (its thread known by then). */
export function editedTurn(ended: Run, message: string): TurnInput {
  return { ...ended.turn, input: message, replaces: ended.id, ...(ended.threadId && { threadId: ended.threadId }) };
}

/** What routes need of a run, wherever it runs. */
export type RunView = Pick<Run, "id" | "watch" | "stop" | "admitted"> & { summary(): RunSummary };

type ClusterOptions = {
  /** --cluster-max-turns: turns running at once across the cluster; undefined: no cluster-wide limit. */
  clusterMaxTurns: number | undefined;
  /** What a refusal of a forwarded command tells the client (routes' mapping, injected: the runs layer knows no HTTP). */
  describeRefusal: (err: unknown) => ApiError;
};

/**
 * This replica's registry of runs and, given a shared store, the ClusterRuns that shares them:
 * made together because each needs the other (every event of the registry's runs goes on to the
 * store through ClusterRuns), by the server and by the tests' in-process replicas alike.
 */
export function createRuns(
  engine: Engine,
  log: Logger,
  options: Omit<RegistryOptions, "tap">,
  store: ClusterStore | undefined,
  clusterOptions: ClusterOptions,
): { runs: RunRegistry; cluster: ClusterRuns | undefined } {
  let cluster: ClusterRuns | undefined;
  const shared = store && {
    tap: (run: Run, event: RunEvent) => cluster?.appended(run, event),
    admitWaiting: (run: Run) => cluster?.admitWaiting(run) ?? true,
  };
  const runs = new RunRegistry(engine, log, { ...options, ...shared });
  cluster = store && new ClusterRuns(runs, store, log, clusterOptions);
  return { runs, cluster };
}

/**
 * The runs of every replica, for routes: a run running here is answered by the registry, any other
 * from the shared store (its record, its event stream); commands for another replica's run or
 * thread go to that replica's control stream. Each run started here is written to the store as it
 * goes (RunPublisher). Without --redis-url there is no ClusterRuns: routes use the registry alone.
 */
export class ClusterRuns {
  private readonly publishers = new Map<Run, RunPublisher>();
  /** Watches of this replica's runs by clients of other replicas, by watch id: each counts for the reattach grace. */
  private readonly remoteWatches = new Map<string, AbortController>();
  /** `left` that came before its `watch` (commands are handled side by side), with when: kept a minute. */
  private readonly leftEarly = new Map<string, number>();
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor(
    private readonly registry: RunRegistry,
    readonly store: ClusterStore,
    private readonly log: Logger,
    private readonly options: ClusterOptions,
  ) {
    store.onCommand((command) => this.handle(command));
    this.sweeper = setInterval(() => void this.endLostRuns(), SWEEP_MS);
  }

  /** The age of the oldest event not yet in the store, in seconds (0: all written). */
  get streamLagSeconds(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const publisher of this.publishers.values()) oldest = Math.min(oldest, publisher.pendingSince);
    return oldest === Number.POSITIVE_INFINITY ? 0 : (performance.now() - oldest) / 1000;
  }

  /** Called by every run of this replica for each event it appends (RunOptions.tap). */
  appended(run: Run, event: RunEvent): void {
    this.publisherFor(run).add(event);
    // A thread lives where its rollout is: here, from its first turn on. Asked at once, so that
    // the lease is there long before the turn ends and a client continues it elsewhere.
    const threadId = run.threadId;
    if (event.event === "thread.started" && threadId !== null) {
      this.store.claimThread(threadId).then(
        (epoch) => epoch === undefined && this.log.warn("another replica holds this turn's thread", { request_id: run.id, thread_id: threadId }),
        () => {},
      );
    }
  }

  private publisherFor(run: Run): RunPublisher {
    let publisher = this.publishers.get(run);
    if (!publisher) {
      publisher = new RunPublisher(run, this.store, this.log, () => this.publishers.delete(run));
      this.publishers.set(run, publisher);
    }
    return publisher;
  }

  private requireStore(): void {
    if (this.store.state !== "up") throw new StoreUnavailableError("not connected");
  }

  /**
   * A run by id: this replica's while it runs; else the store's newest under that id (a run id
   * used again elsewhere replaces a finished one); this replica's finished one while the store is
   * down.
   */
  async find(id: string, viewer: Viewer): Promise<RunView | undefined> {
    const local = this.registry.get(id, viewer);
    if (local?.running) return local;
    let record: RunRecord | undefined;
    try {
      record = await this.store.run(id);
    } catch (err) {
      if (local && err instanceof StoreUnavailableError) return local;
      throw err;
    }
    if (local && (!record || record.owner === this.store.replicaId)) return local;
    // Another tenant's run is as unknown as one that never was.
    return record && canSee(viewer, record.tenant) ? new RemoteRun(id, record, this) : undefined;
  }

  /** Every replica's runs that `viewer` may see; while the store is down, this replica's alone. */
  async list(viewer: Viewer): Promise<RunSummary[]> {
    const running = new Map(this.registry.list(viewer).filter((run) => run.running).map((run) => [run.id, run.summary()]));
    let shared: RunSummary[];
    try {
      shared = (await this.store.runs()).filter((record) => canSee(viewer, record.tenant)).map((record) => record.summary);
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      return this.registry.list(viewer).map((run) => run.summary());
    }
    // This replica's running runs are fresher here than in the store.
    const listed = shared.map((summary) => running.get(summary.id) ?? summary);
    const ids = new Set(listed.map((summary) => summary.id));
    return [...listed, ...[...running.values()].filter((summary) => !ids.has(summary.id))];
  }

  /** Stops a running run wherever it runs; false when no such run is going (that `viewer` may see). */
  async cancel(id: string, viewer: Viewer): Promise<boolean> {
    if (this.registry.get(id)?.running) return this.registry.cancel(id, viewer);
    const record = await this.runningElsewhere(id, viewer);
    if (!record) return false;
    return (await this.command(record.owner, { type: "cancel", run: id }, CONTROL_TIMEOUT_MS)).ok;
  }

  /** Answers an approval of a run wherever it runs; RunNotRunning or ApprovalNotPending when there is nothing to answer. */
  async approve(id: string, approvalId: string, decision: ApprovalDecision, viewer: Viewer): Promise<void> {
    if (this.registry.get(id)?.running) return this.approveHere(id, approvalId, decision, viewer);
    const record = await this.runningElsewhere(id, viewer);
    if (!record) throw new RunNotRunning(id);
    const reply = await this.command(record.owner, { type: "approve", run: id, approvalId, decision }, CONTROL_TIMEOUT_MS);
    if (!reply.ok) throw new ApiError(reply.status as ApiError["status"], reply.code, reply.message, reply.headers);
  }

  private approveHere(id: string, approvalId: string, decision: ApprovalDecision, viewer?: Viewer): void {
    const run = this.registry.get(id, viewer);
    if (!run?.running) throw new RunNotRunning(id);
    if (!run.resolveApproval(approvalId, decision)) throw new ApprovalNotPending(id, approvalId);
  }

  /** `user_edit` of a run on another replica: its owner replaces it; undefined when the run is not running anywhere. */
  async editElsewhere(id: string, newId: string, message: string, viewer: Viewer): Promise<RunView | undefined> {
    const record = await this.runningElsewhere(id, viewer);
    if (!record) return undefined;
    const watch = crypto.randomUUID();
    return this.forward(record.owner, { type: "edit", run: id, id: newId, message, watch }, newId, watch);
  }

  /**
   * Starts a turn where its thread lives: here for a new thread or one whose rollout is here (its
   * lease taken, or kept, with a fencing epoch), on the owner for a thread another live replica
   * holds, streamed through this one.
   */
  async start(id: string, turn: TurnInput, onBusy: OnBusy): Promise<RunView> {
    this.requireStore();
    if (turn.threadId === undefined) return this.startHere(id, turn, onBusy);
    const lease = await this.store.threadLease(turn.threadId);
    if (lease && lease.owner !== this.store.replicaId && lease.ownerAlive) {
      const watch = crypto.randomUUID();
      return this.forward(lease.owner, { type: "start", id, turn, onBusy, watch }, id, watch);
    }
    if (this.registry.threadExists(turn.threadId) === false) {
      if (lease && !lease.ownerAlive) throw this.ownerGone(turn.threadId, lease.owner);
      throw new ThreadNotStoredError(turn.threadId);
    }
    return this.startHere(id, turn, onBusy);
  }

  private ownerGone(threadId: string, owner: string): ThreadUnavailableError {
    return new ThreadUnavailableError(`thread ${threadId} is stored on replica ${owner}, which is gone; its turns can run once it is back (or its rollout is moved)`);
  }

  /** A turn on this replica, within the cluster's limit; its thread's lease re-checked (fenced) right before. */
  private async startHere(id: string, turn: TurnInput, onBusy: OnBusy): Promise<Run> {
    this.requireStore();
    // The registry checks the ids of this replica's runs; another's running run holds its id too,
    // and another tenant's finished one, which a turn under its id would replace in the store.
    const record = await this.store.run(id);
    if (record && this.goingElsewhere(record)) throw new RunIdInUseError(id);
    if (record && !isGoing(record.summary) && record.tenant !== turn.tenant?.name) throw new RunIdTakenError(id);
    if (turn.threadId !== undefined && (await this.store.claimThread(turn.threadId)) === undefined) {
      throw new ThreadUnavailableError(`thread ${turn.threadId} has just been taken by another replica; try again`);
    }
    const enqueue = onBusy === "enqueue";
    // A turn that waits for its thread takes its slots once it leaves the queue (admitWaiting), as
    // on a server of its own: waiting, it holds none of the cluster's or its tenant's.
    if (enqueue && this.registry.wouldWait(turn)) {
      const run = this.registry.start(id, turn, { enqueue });
      await this.published(run);
      return run;
    }
    // An interrupt takes the slots of the turn it replaces, if one runs on its thread here.
    const busy = onBusy === "interrupt" && turn.threadId !== undefined ? this.registry.runningOn(turn.threadId) : undefined;
    return this.startWithSlots(id, turn, busy?.id, () =>
      // Its thread may have become busy meanwhile: then it waits, holding the slots it has.
      onBusy === "interrupt" ? this.registry.interrupt(id, turn) : this.registry.start(id, turn, { enqueue, admitted: true }),
    );
  }

  /** Takes the turn's slots, then starts it; gives them back if it does not start. Answers once the run is published. */
  private async startWithSlots(id: string, turn: TurnInput, replaces: string | undefined, start: () => Run | Promise<Run>): Promise<Run> {
    let run: Run;
    try {
      await this.takeSlots(id, turn, replaces);
      run = await start();
    } catch (err) {
      if (this.limited(turn)) this.store.releaseSlot(id).catch(() => {});
      throw err;
    }
    await this.published(run);
    return run;
  }

  /** Whether a turn counts against a limit across replicas: the cluster's, or its tenant's. */
  private limited(turn: TurnInput): boolean {
    return this.options.clusterMaxTurns !== undefined || turn.tenant?.maxConcurrentTurns !== undefined;
  }

  /**
   * Takes the turn's slots: the cluster's (--cluster-max-turns), then its tenant's
   * (max_concurrent_turns, counted on every replica); as the successor of the run it `replaces`.
   */
  private async takeSlots(id: string, turn: TurnInput, replaces?: string): Promise<void> {
    const limit = this.options.clusterMaxTurns;
    if (limit !== undefined && !(await this.store.takeSlot(id, limit, undefined, replaces))) throw new ClusterLimitError(limit);
    const tenant = turn.tenant;
    const tenantLimit = tenant?.maxConcurrentTurns;
    if (tenant && tenantLimit !== undefined && !(await this.store.takeSlot(id, tenantLimit, tenant.name, replaces))) {
      throw new TenantLimitError(tenant.name, tenantLimit);
    }
  }

  /**
   * `user_edit` of a run of this replica's: the edited turn replaces it (registry.replace) and
   * takes its slots, which the limits do not refuse while the old one holds its own.
   */
  async replaceHere(old: Run, id: string, edit: (ended: Run) => TurnInput): Promise<Run> {
    this.requireStore();
    return this.startWithSlots(id, old.turn, old.id, () => this.registry.replace(old, id, edit));
  }

  /**
   * Whether a turn that waited for its thread here may start: it takes its slots now. false (a
   * limit is reached, or the store is down) keeps it waiting; the registry asks again.
   */
  admitWaiting(run: Run): boolean | Promise<boolean> {
    return !this.limited(run.turn) || this.takeWaitingSlots(run);
  }

  private async takeWaitingSlots(run: Run): Promise<boolean> {
    try {
      await this.takeSlots(run.id, run.turn);
    } catch {
      this.store.releaseSlot(run.id).catch(() => {});
      return false;
    }
    // Stopped meanwhile: its end may have been written before it held these slots, which would then live on.
    if (!run.running) this.store.releaseSlot(run.id).catch(() => {});
    return true;
  }

  /** A run this replica started is not answered before every replica can find it. */
  private async published(run: Run): Promise<void> {
    try {
      await this.publisherFor(run).published;
    } catch (err) {
      run.stop("cancelled", "the shared store became unavailable as the turn started");
      throw err;
    }
  }

  private async forward(owner: string, command: ControlCommand, id: string, watch: string): Promise<RunView> {
    const reply = await this.store.send(owner, command, true, START_TIMEOUT_MS);
    if (!reply) {
      if (command.type === "start" && command.turn.threadId) {
        throw new ThreadUnavailableError(`replica ${owner}, which holds thread ${command.turn.threadId}, did not answer; try again later`);
      }
      throw new ReplicaUnavailableError(owner);
    }
    if (!reply.ok) throw new ApiError(reply.status as ApiError["status"], reply.code, reply.message, reply.headers);
    const record = await this.store.run(id);
    if (!record) throw new ReplicaUnavailableError(owner);
    return new RemoteRun(id, record, this, watch);
  }

  /** The record of a run that another replica runs (or queues) now, that `viewer` (when given) may see. */
  private async runningElsewhere(id: string, viewer?: Viewer): Promise<RunRecord | undefined> {
    const record = await this.store.run(id);
    if (!record || !this.goingElsewhere(record)) return undefined;
    return viewer === undefined || canSee(viewer, record.tenant) ? record : undefined;
  }

  /** Whether the record is of a run that another replica runs (or queues) now. */
  private goingElsewhere(record: RunRecord): boolean {
    return record.owner !== this.store.replicaId && isGoing(record.summary);
  }

  private async command(owner: string, command: ControlCommand, timeoutMs: number): Promise<ControlReply> {
    const reply = await this.store.send(owner, command, true, timeoutMs);
    if (!reply) throw new ReplicaUnavailableError(owner);
    return reply;
  }

  /** Tells the owner of a run that a client here follows it, or has left it. */
  notify(owner: string, command: ControlCommand): void {
    this.store.send(owner, command, false).catch(() => {});
  }

  /** What this replica does for the others: commands for its runs and threads. */
  private async handle(command: ControlCommand): Promise<ControlReply> {
    try {
      switch (command.type) {
        case "cancel":
          if (!this.registry.cancel(command.run)) throw new RunNotRunning(command.run);
          return { ok: true };
        case "approve":
          this.approveHere(command.run, command.approvalId, command.decision);
          return { ok: true };
        case "edit": {
          const old = this.registry.get(command.run);
          if (!old?.running) throw new RunNotRunning(command.run);
          const run = await this.replaceHere(old, command.id, (ended) => editedTurn(ended, command.message));
          return await this.handOver(run, command.watch);
        }
        case "start": {
          const run = await this.startHere(command.id, command.turn, command.onBusy);
          return await this.handOver(run, command.watch);
        }
        case "watch": {
          const run = this.registry.get(command.run);
          if (run?.running) this.watchFor(run, command.watch);
          return { ok: true };
        }
        case "left":
          if (this.remoteWatches.has(command.watch)) this.remoteWatches.get(command.watch)?.abort();
          else this.noteLeftEarly(command.watch);
          return { ok: true };
      }
    } catch (err) {
      const refusal = this.options.describeRefusal(err);
      // A refusal is the asking client's business; anything else is a bug, logged here as routes log theirs.
      if (refusal.code === "internal_error") this.log.error("a command from another replica failed", { command: command.type, error: (err as Error).stack ?? String(err) });
      return replyOf(refusal);
    }
  }

  /** A turn started for another replica's client: counted as watched by it, answered once the engine has taken it. */
  private async handOver(run: Run, watch: string): Promise<ControlReply> {
    this.watchFor(run, watch);
    await this.published(run);
    const refusal = await run.admitted;
    if (refusal) return replyOf(this.options.describeRefusal(refusal));
    return { ok: true };
  }

  /** A watch of a run that had ended by then never comes: what is noted goes after a minute. */
  private noteLeftEarly(watch: string): void {
    const now = performance.now();
    for (const [noted, at] of this.leftEarly) {
      if (now - at < LEFT_EARLY_MS) break;
      this.leftEarly.delete(noted);
    }
    this.leftEarly.set(watch, now);
  }

  /** Holds a watch of `run` for a client of another replica until it leaves, so that the reattach grace counts it. */
  private watchFor(run: Run, watch: string): void {
    const left = new AbortController();
    this.remoteWatches.set(watch, left);
    if (this.leftEarly.delete(watch)) left.abort();
    void (async () => {
      try {
        for await (const _ of run.watch(Number.MAX_SAFE_INTEGER, left.signal));
      } finally {
        this.remoteWatches.delete(watch);
      }
    })();
  }

  /** Ends, once across the cluster, the runs of replicas that stopped saying they live. */
  private async endLostRuns(): Promise<void> {
    try {
      for (const { replica, runs } of await this.store.lostRuns()) {
        for (const id of runs) {
          const record = await this.store.run(id);
          if (!record) continue;
          const finishedAt = new Date().toISOString();
          const done: DoneData = {
            status: "error",
            thread_id: record.summary.thread_id,
            request_id: id,
            usage: null,
            error: `replica lost: ${replica} stopped answering mid-turn`,
            final_response: null,
            replaces: record.summary.replaces,
            diff: null,
          };
          const summary: RunSummary = { ...record.summary, status: "error", queue_position: null, finished_at: finishedAt };
          if (await this.store.endLostRun(id, JSON.stringify(done), summary)) {
            this.log.warn("ended a lost replica's turn", { request_id: id, replica });
          }
        }
        await this.store.forgetReplica(replica);
      }
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) this.log.error("looking for lost replicas failed", { error: String(err) });
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    this.store.close();
  }
}

/** A command for a run that is not running (any more). */
export class RunNotRunning extends Error {
  constructor(readonly id: string) {
    super(`No turn with id ${id} is running.`);
  }
}

/** A `user_confirm` for an approval the run has not asked for, or that is answered already. */
export class ApprovalNotPending extends Error {
  constructor(readonly id: string, readonly approvalId: string) {
    super(`Turn ${id} has no pending approval ${approvalId}.`);
  }
}

const isGoing = (summary: RunSummary) => summary.status === "running" || summary.status === "queued";

function replyOf(err: ApiError): ControlReply {
  return { ok: false, status: err.status, code: err.code, message: err.message, headers: err.headers };
}

/**
 * A run on another replica, read from the store: its events replayed from the stream after a
 * position, then followed live until `done`, the same frames as on the owner. Never throws from
 * `watch` (the SSE layer relies on that): while the store is down it waits and reads on.
 */
class RemoteRun implements RunView {
  readonly admitted = Promise.resolve(undefined);

  constructor(
    readonly id: string,
    private readonly record: RunRecord,
    private readonly cluster: ClusterRuns,
    /** The watch the owner already counts (a turn forwarded by this replica). */
    private registeredWatch?: string,
  ) {}

  summary(): RunSummary {
    return this.record.summary;
  }

  stop(): void {
    this.cluster.notify(this.record.owner, { type: "cancel", run: this.id });
  }

  async *watch(afterId: number, signal: AbortSignal): AsyncGenerator<RunEvent[]> {
    const { store } = this.cluster;
    const running = isGoing(this.record.summary);
    const watch = this.registeredWatch ?? crypto.randomUUID();
    if (running && this.registeredWatch === undefined) this.cluster.notify(this.record.owner, { type: "watch", run: this.id, watch });
    this.registeredWatch = undefined;
    // `afterId` is what the client has; `position`, where reading goes on. They differ for a
    // Last-Event-ID past what Redis holds, which may lag behind the owner: reading goes on from the
    // stream's end, leaving out the events up to `afterId` but `done`, which every reading ends
    // with (as on the owner, a client that claims more than there is still gets it).
    let position = afterId;
    let ended = false;
    try {
      let fromStream = true;
      let first = afterId > 0;
      while (!signal.aborted) {
        let read: RunEvent[];
        try {
          if (first) {
            const last = await store.lastEvent(this.id);
            position = Math.min(position, last === undefined ? 0 : last.event === "done" ? last.id - 1 : last.id);
            first = false;
          }
          read = fromStream ? await store.readEvents(this.id, position, READ_BATCH) : await store.followEvents(this.id, position, signal);
        } catch {
          await Bun.sleep(RETRY_MS);
          fromStream = true;
          continue;
        }
        if (signal.aborted) return;
        if (read.length === 0) {
          fromStream = false;
          continue;
        }
        const last = read.at(-1) as RunEvent;
        position = last.id;
        const batch = read.filter((event) => event.id > afterId || event.event === "done");
        if (batch.length > 0) yield batch;
        if (last.event === "done") {
          ended = true;
          return;
        }
        fromStream = read.length === READ_BATCH;
      }
    } finally {
      if (running && !ended) this.cluster.notify(this.record.owner, { type: "left", watch });
    }
  }
}

/**
 * Writes one run's events to the store as the run appends them: agent-message deltas together
 * every DELTA_BATCH_MS, anything else at once (with the deltas before it), one write at a time;
 * whatever came meanwhile goes in the next. A failed write is tried again (the run streams on to
 * its local clients meanwhile); once `done` is written the publisher is gone.
 */
class RunPublisher {
  readonly published: Promise<void>;
  private pending: RunEvent[] = [];
  /** When the oldest event not yet written came (performance.now()), pending or being written; +∞ with none. */
  get pendingSince(): number {
    return Math.min(this.waitingSince, this.writingSince);
  }
  private waitingSince = Number.POSITIVE_INFINITY;
  private writingSince = Number.POSITIVE_INFINITY;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private immediate: ReturnType<typeof setImmediate> | undefined;
  private writing = false;
  private lastSummary = "";
  private stopped = false;

  constructor(
    private readonly run: Run,
    private readonly store: ClusterStore,
    private readonly log: Logger,
    private readonly forget: () => void,
  ) {
    const summary = run.summary();
    this.lastSummary = JSON.stringify(summary);
    this.published = store.publishRun(run.id, summary, run.turn.tenant?.name);
    // A run that could not be published was refused (503); its events have nowhere to go.
    this.published.then(() => this.flushSoon(0), () => this.end());
  }

  add(event: RunEvent): void {
    if (this.stopped) return;
    if (this.pending.length === 0) this.waitingSince = performance.now();
    this.pending.push(event);
    this.flushSoon(event.event === "item.updated" ? DELTA_BATCH_MS : 0);
  }

  private flushSoon(delayMs: number): void {
    if (this.writing || this.pending.length === 0 || this.immediate !== undefined) return;
    if (this.timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // Not a 0 ms timer, which waits a millisecond or more: every event but a delta would pay it,
    // on every replica that follows the run (measured: 1.7 ms from the owner's log to another
    // replica's client). What comes within the same turn of the event loop still goes together.
    if (delayMs === 0) {
      this.immediate = setImmediate(() => {
        this.immediate = undefined;
        void this.flush();
      });
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.writingSince = this.waitingSince;
    this.waitingSince = Number.POSITIVE_INFINITY;
    const finished = batch.at(-1)?.event === "done";
    const summaryText = JSON.stringify(this.run.summary());
    const changed = summaryText !== this.lastSummary;
    this.writing = true;
    try {
      const result = await this.store.appendEvents(this.run.id, batch, changed ? JSON.parse(summaryText) : undefined, finished);
      this.lastSummary = summaryText;
      if (result === "ended_elsewhere") {
        // A survivor took this replica for lost and ended the run: it must not go on twice.
        this.log.warn("turn was ended by another replica; stopping it here", { request_id: this.run.id });
        this.run.stop("cancelled", "replica lost");
      }
      // A finished run whose id runs again has nothing more to say in the store.
      if (result !== "written") return this.end();
      if (finished) return this.end();
    } catch {
      // Kept, in order, for the next try; the store's heartbeat reconnects meanwhile.
      this.pending = [...batch, ...this.pending];
      this.waitingSince = this.writingSince;
      this.writing = false;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, RETRY_MS);
      return;
    } finally {
      this.writing = false;
      this.writingSince = Number.POSITIVE_INFINITY;
    }
    this.flushSoon(0);
  }

  private end(): void {
    this.stopped = true;
    this.pending = [];
    this.waitingSince = Number.POSITIVE_INFINITY;
    this.forget();
  }
}
