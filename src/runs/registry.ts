import type { Engine } from "../engine/types";
import type { Logger } from "../log";
import { Run, type RunOptions, type StopReason, type TurnInput } from "./run";

export class RunIdInUseError extends Error {
  constructor(readonly id: string) {
    super(`a turn with id ${id} is already running`);
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
};

const RUN_DEFAULTS = {
  reattachGraceMs: 0,
  retentionMs: 600_000,
  maxRetained: 1_000,
  maxRetainedBytes: 256 * 1024 * 1024,
  maxEvents: 10_000,
  maxBytes: 16 * 1024 * 1024,
};

/**
 * The runs by id: the running ones, bounded in number and one per thread, and finished ones for
 * the retention period, bounded in number and in the bytes of their events. Stopped together at
 * shutdown.
 */
export class RunRegistry {
  private readonly runs = new Map<string, Run>();
  private readonly running = new Set<Run>();
  /** Finished runs still kept, in the order they finished, each with its retention timer. */
  private readonly finished = new Map<Run, ReturnType<typeof setTimeout>>();
  private finishedBytes = 0;
  private readonly idleWaiters = new Set<() => void>();
  /** Ids of turns that will start once the run they replace has ended (see `replace`). */
  private readonly reserved = new Set<string>();
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

  /**
   * Throws what `start(id, turn)` would refuse the turn for. A turn `replacing` a running run takes
   * its place: that run's id, thread and slot count as free.
   */
  checkStart(id: string, turn: TurnInput, { replacing }: { replacing?: Run } = {}): void {
    if (this.closed) throw new RunsClosedError();
    const holder = this.runs.get(id);
    if ((holder?.running && holder !== replacing) || this.reserved.has(id)) throw new RunIdInUseError(id);
    if (turn.threadId !== undefined) {
      const busy = [...this.running].find((run) => run.threadId === turn.threadId && run !== replacing);
      if (busy) throw new ThreadBusyError(turn.threadId, busy.id);
      const doing = this.heldThreads.get(turn.threadId);
      if (doing !== undefined) throw new ThreadHeldError(turn.threadId, doing);
    }
    const others = this.running.size - (replacing?.running ? 1 : 0);
    if (others >= this.options.maxConcurrent) throw new RunLimitError(this.options.maxConcurrent);
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
    try {
      old.stop("cancelled");
      await old.finished;
    } finally {
      this.reserved.delete(id);
    }
    return this.start(id, edit(old));
  }

  start(id: string, turn: TurnInput): Run {
    this.checkStart(id, turn);
    const { reattachGraceMs, maxEvents, maxBytes, ...retention } = { ...RUN_DEFAULTS, ...this.options };
    // A finished run under the same id is replaced: it can no longer be reached.
    const replaced = this.runs.get(id);
    if (replaced) this.forget(replaced);
    const run = new Run(id, this.engine, turn, this.log, {
      reattachGraceMs,
      maxEvents,
      maxBytes,
      now: this.options.now ?? (() => performance.now()),
      ...(this.options.observer && { observer: this.options.observer }),
    });
    this.runs.set(id, run);
    this.running.add(run);
    const { turnTimeoutMs } = this.options;
    const timeout = turnTimeoutMs === undefined ? undefined : setTimeout(() => run.stop("timeout"), turnTimeoutMs);
    void run.finished.then(() => {
      clearTimeout(timeout);
      this.running.delete(run);
      if (this.running.size === 0) for (const wake of this.idleWaiters) wake();
      // A turn the engine refused never existed for clients: its id is free again at once.
      if (run.refusal) this.unlist(run);
      else this.retain(run, retention);
    });
    return run;
  }

  /** The run going on in this thread, if any. */
  runningOn(threadId: string): Run | undefined {
    return [...this.running].find((run) => run.threadId === threadId);
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

  /** Whether codex can continue this thread; undefined when the engine cannot tell. */
  threadExists(threadId: string): boolean | undefined {
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

  get(id: string): Run | undefined {
    return this.runs.get(id);
  }

  list(): Run[] {
    return [...this.runs.values()];
  }

  /** Stops the running run with this id; false when no such run is going. */
  cancel(id: string): boolean {
    const run = this.runs.get(id);
    if (!run?.running) return false;
    run.stop("cancelled");
    return true;
  }

  /** Refuses new runs from now on; the running ones go on. */
  close(): void {
    this.closed = true;
  }

  stopAll(reason: StopReason): void {
    for (const run of this.running) run.stop(reason);
  }

  /** Resolves true once no run is going, or false when `timeoutMs` passes first. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.running.size === 0) return Promise.resolve(true);
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
