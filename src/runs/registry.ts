import type { Engine } from "../engine/types";
import type { Logger } from "../log";
import { Run, type RunEvent, type StopReason, type TurnInput } from "./run";

export class RunIdInUseError extends Error {
  constructor(readonly id: string) {
    super(`a turn with id ${id} is already running`);
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

export type RegistryOptions = {
  maxConcurrent: number;
  /** A run still going after this long is stopped with reason `timeout`. */
  turnTimeoutMs: number | undefined;
  now?: () => number;
};

/** The turns in flight: found by id, bounded in number, and stopped together at shutdown. */
export class RunRegistry {
  private readonly active = new Map<string, Run>();
  private readonly idleWaiters = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly engine: Engine,
    private readonly log: Logger,
    private readonly options: RegistryOptions,
  ) {}

  get size(): number {
    return this.active.size;
  }

  /** Registers a run; it leaves the registry when its event stream ends or is abandoned. */
  start(id: string, turn: TurnInput): { run: Run; events: AsyncGenerator<RunEvent> } {
    if (this.closed) throw new RunsClosedError();
    if (this.active.has(id)) throw new RunIdInUseError(id);
    if (this.active.size >= this.options.maxConcurrent) throw new RunLimitError(this.options.maxConcurrent);
    const run = new Run(id, this.engine, turn, this.log, this.options.now ?? (() => performance.now()));
    this.active.set(id, run);
    const { turnTimeoutMs } = this.options;
    const timer = turnTimeoutMs === undefined ? undefined : setTimeout(() => run.stop("timeout"), turnTimeoutMs);
    const release = () => {
      clearTimeout(timer);
      this.active.delete(id);
      if (this.active.size === 0) for (const wake of this.idleWaiters) wake();
    };
    async function* tracked() {
      try {
        yield* run.events();
      } finally {
        release();
      }
    }
    return { run, events: tracked() };
  }

  /** Stops the run with this id; false when no such run is going. */
  cancel(id: string): boolean {
    const run = this.active.get(id);
    run?.stop("cancelled");
    return run !== undefined;
  }

  /** Refuses new runs from now on; the running ones go on. */
  close(): void {
    this.closed = true;
  }

  stopAll(reason: StopReason): void {
    for (const run of this.active.values()) run.stop(reason);
  }

  /** Resolves true once no run is left, or false when `timeoutMs` passes first. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.active.size === 0) return Promise.resolve(true);
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
