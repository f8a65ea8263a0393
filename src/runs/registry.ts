import type { Engine } from "../engine/types";
import type { Logger } from "../log";
import { canSee, type Tenant, type Viewer } from "../tenants/tenant";
import { Run, type RunOptions, type StopReason, type TurnInput } from "./run";

export class RunIdInUseError extends Error {
  constructor(readonly id: string) {
    super(`a turn with id ${id} is already running`);
  }
}

/**
 * The id is kept for another tenant's finished turn: taking it would replace that turn, which its
 * tenant could then no longer read. Says no more than that the id is taken.
 */
export class RunIdTakenError extends Error {
  constructor(readonly id: string) {
    super(`the id ${id} is taken; use another`);
  }
}

export class ThreadBusyError extends Error {
  constructor(readonly threadId: string, readonly runId: string) {
    super(`thread ${threadId} is running turn ${runId}; a thread runs one turn at a time`);
  }
}

/** The thread is being changed (archived) and takes no turn until that is done. */
export class ThreadHeldError extends Error {
  constructor(readonly threadId: string, doing: string) {
    super(`thread ${threadId} is ${doing}; it takes no turn meanwhile`);
  }
}

export class RunsClosedError extends Error {
  constructor() {
    super("the server is shutting down and starts no new turns");
  }
}

export class RunLimitError extends Error {
  constructor(readonly limit: number) {
    super(`the limit of ${limit} running turns is reached; try again later`);
  }
}

/** The turn's tenant already runs its `max_concurrent_turns`, whatever the server's own limit leaves. */
export class TenantLimitError extends Error {
  constructor(readonly tenant: string, readonly limit: number) {
    super(`tenant ${tenant} already runs its limit of ${limit} turns; try again later`);
  }
}

export class QueueFullError extends Error {
  constructor(readonly threadId: string, readonly limit: number) {
    super(`thread ${threadId} already has ${limit} turns waiting; try again later`);
  }
}

/** How many turns may wait for one thread (`start` with `enqueue`). */
export const MAX_WAITING_PER_THREAD = 8;

export type RegistryOptions = Partial<Omit<RunOptions, "now">> & {
  maxConcurrent: number;
  /** A run still going after this long is stopped with reason `timeout`. */
  turnTimeoutMs: number | undefined;
  /** How long a finished run can still be listed and replayed. */
  retentionMs?: number;
  /** At most this many finished runs are kept; past it the oldest go first. */
  maxRetained?: number;
  /** At most this many bytes of finished runs' events are kept; past it the oldest runs go first. */
  maxRetainedBytes?: number;
  now?: () => number;
  /**
   * Asked before a waiting turn starts, when it may start here: whether it has its slots
   * elsewhere too (with replicas, the cluster's and its tenant's, across replicas). false: it keeps
   * waiting, in its place, and is asked again once a turn ends here or ADMIT_RETRY_MS later.
   */
  admitWaiting?: (run: Run) => boolean | Promise<boolean>;
};

/** How soon a waiting turn that `admitWaiting` refused is asked again, if no turn here ends first. */
export const ADMIT_RETRY_MS = 500;

export const RUN_DEFAULTS = {
  reattachGraceMs: 0,
  retentionMs: 600_000,
  maxRetained: 1_000,
  maxRetainedBytes: 256 * 1024 * 1024,
  maxEvents: 10_000,
  maxBytes: 16 * 1024 * 1024,
};

/**
 * The runs by id: the running ones, bounded in number and one per thread, those waiting for their
 * thread, and finished ones for the retention period, bounded in number and in the bytes of their
 * events. Stopped together at shutdown.
 */
export class RunRegistry {
  private readonly runs = new Map<string, Run>();
  private readonly running = new Set<Run>();
  /** Finished runs still kept, in the order they finished, each with its retention timer. */
  private readonly finished = new Map<Run, ReturnType<typeof setTimeout>>();
  private finishedBytes = 0;
  /** Turns waiting for their thread, by thread id, first come first: each runs once the one before it has ended. */
  private readonly waiting = new Map<string, Run[]>();
  private readonly idleWaiters = new Set<() => void>();
  /** Ids of turns that will start once the run they replace has ended (see `replace`). */
  private readonly reserved = new Set<string>();
  /** Runs being replaced: their thread goes to the replacement, before any turn waiting for it. */
  private readonly replacing = new Set<Run>();
  /** Waiting turns that `admitWaiting` is being asked about. */
  private readonly admitting = new Set<Run>();
  /** Waiting turns that hold their slots elsewhere: `admitWaiting` said yes, or they had them before they queued. */
  private readonly admitted = new Set<Run>();
  private admitRetry: ReturnType<typeof setTimeout> | undefined;
  /** Threads held by `holdThread`, with what is being done to them. */
  private readonly heldThreads = new Map<string, string>();
  private closed = false;

  constructor(
    private readonly engine: Engine,
    private readonly log: Logger,
    private readonly options: RegistryOptions,
  ) {}

  /** Runs going on now. */
  get size(): number {
    return this.running.size;
  }

  /** Finished runs kept for listing and replay. */
  get retainedRuns(): number {
    return this.finished.size;
  }

  /** The bytes of event data the finished runs kept hold (running runs' logs not counted). */
  get retainedBytes(): number {
    return this.finishedBytes;
  }

  /** Whether new turns are refused (`close`): the server is shutting down. */
  get closing(): boolean {
    return this.closed;
  }

  /** Turns waiting for their thread. */
  get queued(): number {
    let count = 0;
    for (const queue of this.waiting.values()) count += queue.length;
    return count;
  }

  /**
   * Throws what `start(id, turn)` would refuse the turn for. A turn `replacing` a running run takes
   * its place: that run's id, thread and slot count as free.
   */
  checkStart(id: string, turn: TurnInput, { replacing }: { replacing?: Run } = {}): void {
    this.checkOpen(id, turn, replacing);
    if (turn.threadId !== undefined) {
      const busy = this.runningOn(turn.threadId);
      if (busy && busy !== replacing) throw new ThreadBusyError(turn.threadId, busy.id);
      const doing = this.heldThreads.get(turn.threadId);
      if (doing !== undefined) throw new ThreadHeldError(turn.threadId, doing);
    }
    const tenantLimit = turn.tenant?.maxConcurrentTurns;
    if (tenantLimit !== undefined && this.runningFor(turn.tenant as Tenant, replacing) >= tenantLimit) {
      throw new TenantLimitError((turn.tenant as Tenant).name, tenantLimit);
    }
    const others = this.running.size - (replacing?.running ? 1 : 0);
    if (others >= this.options.maxConcurrent) throw new RunLimitError(this.options.maxConcurrent);
  }

  /**
   * New turns are taken, and this id is free (or the one of the run being replaced): a finished
   * run under it is replaced only by a turn of the same tenant's.
   */
  private checkOpen(id: string, turn: TurnInput, replacing?: Run): void {
    if (this.closed) throw new RunsClosedError();
    const holder = this.runs.get(id);
    if ((holder?.running && holder !== replacing) || this.reserved.has(id)) throw new RunIdInUseError(id);
    if (holder && holder !== replacing && holder.turn.tenant?.name !== turn.tenant?.name) throw new RunIdTakenError(id);
  }

  /** How many turns of `tenant` run, not counting `replacing` (whose slot a replacement takes). */
  private runningFor(tenant: Tenant, replacing?: Run): number {
    let count = 0;
    for (const run of this.running) if (run !== replacing && run.turn.tenant?.name === tenant.name) count++;
    return count;
  }

  /** Whether the tenant of `turn` has a slot of its own free (always, for a tenant without a limit). */
  private tenantHasRoom(turn: TurnInput): boolean {
    const limit = turn.tenant?.maxConcurrentTurns;
    return limit === undefined || this.runningFor(turn.tenant as Tenant) < limit;
  }

  /** The turn running on this thread, if any. */
  runningOn(threadId: string): Run | undefined {
    for (const run of this.running) if (run.threadId === threadId) return run;
    return undefined;
  }

  /**
   * Starts a turn in place of the running run `old` (an edit). Whatever would refuse it is checked
   * before `old` is touched, so a refused edit leaves it running. Then `old` is cancelled and the
   * turn starts once it has ended (a thread runs one turn at a time), its id held for it meanwhile;
   * `edit` makes the turn from `old` as it ended, when its thread is known.
   */
  async replace(old: Run, id: string, edit: (old: Run) => TurnInput): Promise<Run> {
    this.checkStart(id, edit(old), { replacing: old });
    this.reserved.add(id);
    this.replacing.add(old);
    try {
      old.stop("cancelled");
      await old.finished;
    } finally {
      this.reserved.delete(id);
    }
    try {
      return this.start(id, edit(old));
    } finally {
      // The thread is the replacement's now; were it refused after all (the server began to shut
      // down meanwhile), the next waiting turn's.
      this.replacing.delete(old);
      this.startWaiting();
    }
  }

  /**
   * Starts the turn `turn` at the same thread as a running turn (the thread runs one turn at a
   * time): the running turn is cancelled and the new one takes its place, as with `replace`,
   * ahead of any turn waiting for the thread. Without a running turn there, a plain `start`.
   */
  interrupt(id: string, turn: TurnInput): Run | Promise<Run> {
    const busy = turn.threadId === undefined ? undefined : this.runningOn(turn.threadId);
    if (!busy) return this.start(id, turn);
    return this.replace(busy, id, (old) => ({ ...turn, replaces: old.id }));
  }

  /**
   * Starts a turn. With `enqueue`, a turn for a thread that runs another one waits for it instead
   * of being refused (at most MAX_WAITING_PER_THREAD per thread, first come first): it takes no
   * slot while it waits, and starts in the one its predecessor leaves. `admitted`: the turn holds
   * its slots elsewhere already (see `admitWaiting`), should it have to wait all the same.
   */
  start(id: string, turn: TurnInput, { enqueue = false, admitted = false }: { enqueue?: boolean; admitted?: boolean } = {}): Run {
    const threadId = turn.threadId;
    if (enqueue && this.wouldWait(turn) && threadId !== undefined) {
      this.checkOpen(id, turn);
      const queue = this.waiting.get(threadId) ?? [];
      if (queue.length >= MAX_WAITING_PER_THREAD) throw new QueueFullError(threadId, MAX_WAITING_PER_THREAD);
      const run = this.create(id, turn, queue.length + 1);
      queue.push(run);
      this.waiting.set(threadId, queue);
      if (admitted) this.admitted.add(run);
      return run;
    }
    this.checkStart(id, turn);
    const run = this.create(id, turn);
    this.activate(run);
    return run;
  }

  /**
   * Whether a turn started with `enqueue` now would wait for its thread. Turns may wait with none
   * running on their thread: the next one's tenant is at its own limit, or `admitWaiting` said no.
   */
  wouldWait(turn: TurnInput): boolean {
    return turn.threadId !== undefined && (this.runningOn(turn.threadId) !== undefined || this.waiting.has(turn.threadId));
  }

  /** A waiting turn (`queuePosition`) or one about to run, listed from now on, kept for the retention once it has finished. */
  private create(id: string, turn: TurnInput, queuePosition?: number): Run {
    const { reattachGraceMs, maxEvents, maxBytes, stallTimeoutMs, ...retention } = { ...RUN_DEFAULTS, ...this.options };
    // A finished run under the same id is replaced: it can no longer be reached.
    const replaced = this.runs.get(id);
    if (replaced) this.forget(replaced);
    const run = new Run(id, this.engine, turn, this.log, {
      reattachGraceMs,
      maxEvents,
      maxBytes,
      now: this.options.now ?? (() => performance.now()),
      ...(this.options.observer && { observer: this.options.observer }),
      ...(this.options.notifier && { notifier: this.options.notifier }),
      ...(this.options.threadOwners && { threadOwners: this.options.threadOwners }),
      ...(queuePosition !== undefined && { queuePosition }),
      ...(stallTimeoutMs !== undefined && { stallTimeoutMs }),
      ...(this.options.tap && { tap: this.options.tap }),
    });
    this.runs.set(id, run);
    void run.finished.then(() => {
      // A turn that ran leaves its thread and its slot to the next waiting turn; one that never left the queue, its place.
      this.admitted.delete(run);
      if (this.running.delete(run)) this.startWaiting();
      else this.leaveQueue(run);
      if (this.running.size === 0 && this.waiting.size === 0) for (const wake of this.idleWaiters) wake();
      // A turn the engine refused never existed for clients: its id is free again at once.
      if (run.refusal) this.unlist(run);
      else this.retain(run, retention);
    });
    return run;
  }

  /** The turn runs from now on: it takes a slot, and the turn timeout counts from here. */
  private activate(run: Run): void {
    this.running.add(run);
    const { turnTimeoutMs } = this.options;
    if (turnTimeoutMs !== undefined) {
      const timeout = setTimeout(() => run.stop("timeout"), turnTimeoutMs);
      void run.finished.then(() => clearTimeout(timeout));
    }
    run.moveInQueue(undefined);
  }

  /**
   * Starts the first waiting turn of each thread that no turn runs on (nor is being replaced on),
   * while slots are free: called whenever a turn has ended, so that the turn waiting for its
   * thread takes the slot it left.
   */
  private startWaiting(): void {
    for (const [threadId, queue] of this.waiting) {
      if (this.running.size >= this.options.maxConcurrent) return;
      if (this.runningOn(threadId) || [...this.replacing].some((run) => run.threadId === threadId)) continue;
      const next = queue[0] as Run;
      // A tenant at its own limit keeps its turn waiting, in its place, until one of its turns ends.
      if (!this.tenantHasRoom(next.turn)) continue;
      if (!this.admitted.has(next) && !this.admits(next)) continue;
      queue.shift();
      this.admitted.delete(next);
      if (queue.length === 0) this.waiting.delete(threadId);
      this.activate(next);
      this.renumber(queue);
    }
  }

  /**
   * Whether `admitWaiting` lets the waiting turn start now. An answer that takes a while (the
   * store's) comes later: until then, no; then the registry looks again at what may start.
   */
  private admits(run: Run): boolean {
    if (this.admitting.has(run)) return false;
    const answer = this.options.admitWaiting?.(run) ?? true;
    if (typeof answer === "boolean") {
      if (!answer) this.retryAdmission();
      return answer;
    }
    this.admitting.add(run);
    void answer
      .catch(() => false)
      .then((admitted) => {
        this.admitting.delete(run);
        if (!run.running) return;
        if (admitted) this.admitted.add(run);
        else this.retryAdmission();
        this.startWaiting();
      });
    return false;
  }

  private retryAdmission(): void {
    this.admitRetry ??= setTimeout(() => {
      this.admitRetry = undefined;
      this.startWaiting();
    }, ADMIT_RETRY_MS);
  }

  /** A waiting turn that was stopped leaves its queue; those behind it move up. */
  private leaveQueue(run: Run): void {
    const queue = run.threadId === null ? undefined : this.waiting.get(run.threadId);
    const at = queue?.indexOf(run) ?? -1;
    if (!queue || at < 0) return;
    queue.splice(at, 1);
    if (queue.length === 0) this.waiting.delete(run.threadId as string);
    this.renumber(queue);
  }

  private renumber(queue: Run[]): void {
    for (const [index, run] of queue.entries()) run.moveInQueue(index + 1);
  }

  /**
   * Runs `change` with no turn on the thread: refused (ThreadBusyError, ThreadHeldError) while a
   * turn runs on it or another change holds it, and a turn that would start meanwhile is refused.
   * `doing` says what, to whoever is refused.
   */
  async holdThread<T>(threadId: string, doing: string, change: () => Promise<T>): Promise<T> {
    const busy = this.runningOn(threadId);
    if (busy) throw new ThreadBusyError(threadId, busy.id);
    const other = this.heldThreads.get(threadId);
    if (other !== undefined) throw new ThreadHeldError(threadId, other);
    this.heldThreads.set(threadId, doing);
    try {
      return await change();
    } finally {
      this.heldThreads.delete(threadId);
    }
  }

  /**
   * Whether codex can continue this thread; undefined when the engine cannot tell. A thread that a
   * turn runs on is there, stored or not yet (exec stores a new thread only as its first turn ends).
   */
  threadExists(threadId: string): boolean | undefined {
    if (this.runningOn(threadId)) return true;
    return this.engine.threadExists?.(threadId);
  }

  /**
   * Keeps a finished run for the retention period, while the finished runs stay within their
   * bounds, whatever the retention: past one, the oldest finished go first. A run that alone is
   * over the bytes is not kept, and costs the others nothing. Only the runs dropped are visited
   * (a Map keeps insertion order).
   */
  private retain(run: Run, bounds: { retentionMs: number; maxRetained: number; maxRetainedBytes: number }): void {
    // Its id may already run again: from its `done` on, it is no longer running.
    if (this.runs.get(run.id) !== run) return;
    if (run.size > bounds.maxRetainedBytes) return this.unlist(run);
    this.finished.set(run, setTimeout(() => this.forget(run), bounds.retentionMs).unref());
    this.finishedBytes += run.size;
    for (const oldest of this.finished.keys()) {
      if (this.finished.size <= bounds.maxRetained && this.finishedBytes <= bounds.maxRetainedBytes) return;
      this.forget(oldest);
    }
  }

  /** A finished run is no longer listed, replayed or counted. */
  private forget(run: Run): void {
    const timer = this.finished.get(run);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.finished.delete(run);
    this.finishedBytes -= run.size;
    this.unlist(run);
  }

  /** Its id no longer finds it, unless a newer run has taken the id already. */
  private unlist(run: Run): void {
    if (this.runs.get(run.id) === run) this.runs.delete(run.id);
  }

  /** The run with this id, if `viewer` (when given) may see it: another tenant's run is as unknown. */
  get(id: string, viewer?: Viewer): Run | undefined {
    const run = this.runs.get(id);
    return run && (viewer === undefined || canSee(viewer, run.turn.tenant?.name)) ? run : undefined;
  }

  /** The runs `viewer` (when given) may see. */
  list(viewer?: Viewer): Run[] {
    const runs = [...this.runs.values()];
    return viewer === undefined || viewer.admin ? runs : runs.filter((run) => canSee(viewer, run.turn.tenant?.name));
  }

  /** Stops the running run with this id, if `viewer` (when given) may see it; false when no such run is going. */
  cancel(id: string, viewer?: Viewer): boolean {
    const run = this.get(id, viewer);
    if (!run?.running) return false;
    run.stop("cancelled");
    return true;
  }

  /** Refuses new runs from now on; the running ones go on, the waiting ones are cancelled (they never started). */
  close(): void {
    this.closed = true;
    clearTimeout(this.admitRetry);
    for (const queue of this.waiting.values()) for (const run of queue) run.stop("cancelled");
  }

  /** Stops every run going on, the waiting ones too. */
  stopAll(reason: StopReason): void {
    for (const run of this.runs.values()) if (run.running) run.stop(reason);
  }

  /** Resolves true once no run is going or waiting, or false when `timeoutMs` passes first. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.running.size === 0 && this.waiting.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (idle: boolean) => {
        clearTimeout(timer);
        this.idleWaiters.delete(wake);
        resolve(idle);
      };
      const wake = () => finish(true);
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.idleWaiters.add(wake);
    });
  }
}
