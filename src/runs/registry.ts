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
  now?: () => number;
};

const RUN_DEFAULTS = {
  reattachGraceMs: 0,
  retentionMs: 600_000,
  maxRetained: 1_000,
  maxEvents: 10_000,
  maxBytes: 16 * 1024 * 1024,
};

/**
 * The runs by id: the running ones, bounded in number and one per thread, and finished ones for
 * the retention period. Stopped together at shutdown.
 */
export class RunRegistry {
  private readonly runs = new Map<string, Run>();
  private readonly running = new Set<Run>();
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
    const { reattachGraceMs, maxEvents, maxBytes, retentionMs, maxRetained } = { ...RUN_DEFAULTS, ...this.options };
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
      // A turn the engine refused never existed for clients: its id is free again at once.
      if (run.refusal) this.runs.delete(id);
      if (this.running.size === 0) for (const wake of this.idleWaiters) wake();
      this.dropOldestFinished(maxRetained);
      setTimeout(() => {
        if (this.runs.get(id) === run) this.runs.delete(id);
      }, retentionMs).unref();
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

  /** Keeps the memory of finished runs bounded, whatever the retention: oldest first (a Map keeps insertion order). */
  private dropOldestFinished(maxRetained: number): void {
    let finished = this.runs.size - this.running.size;
    for (const [id, run] of this.runs) {
      if (finished <= maxRetained) return;
      if (!run.running) {
        this.runs.delete(id);
        finished--;
      }
    }
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
