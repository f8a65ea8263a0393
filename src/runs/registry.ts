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

/** The turns in flight, so that they can be found by id and stopped together at shutdown. */
export class RunRegistry {
  private readonly active = new Map<string, Run>();
  private readonly idleWaiters = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly engine: Engine,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.active.size;
  }

  /** Registers a run; it leaves the registry when its event stream ends or is abandoned. */
  start(id: string, turn: TurnInput): { run: Run; events: AsyncGenerator<RunEvent> } {
    if (this.closed) throw new RunsClosedError();
    if (this.active.has(id)) throw new RunIdInUseError(id);
    const run = new Run(id, this.engine, turn, this.log, this.now);
    this.active.set(id, run);
    const release = () => {
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

  /** Refuses new runs from now on and stops the running ones. */
  close(reason: StopReason): void {
    this.closed = true;
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
