import { readFileSync } from "node:fs";
import type { Logger } from "../../log";
import { assertExecutable } from "../codex-binary";
import { codexOverrides, type SandboxMode, withPathDirs } from "../codex-launch";
import { type CodexLaunchOptions, EngineBusyError, EngineError } from "../types";
import { AppServerConnection } from "./connection";
import type { ServerNotification, ServerRequest } from "./protocol";
import type { TurnSession } from "./turn-session";

/** How the pool starts its processes. */
export type PoolLaunch = {
  /** Read at each start, so that a config.toml edited since is respected by the next process. */
  argv(): string[];
  env: Record<string, string>;
  codexPath: string;
  requestTimeoutMs: number;
  log: Logger;
  /** Delay before restarting a process that died, doubled on each death in a row, up to `max`. */
  restartDelayMs?: { first: number; max: number };
};

/**
 * When a process is replaced by a fresh one: codex keeps about 1 MiB for every thread it ever
 * loaded, and neither `thread/unsubscribe` nor ephemeral threads give it back. Once idle, a process
 * past either limit is stopped and started anew; its threads resume on whichever process takes
 * their next turn.
 */
export type RecycleLimits = { maxThreads: number; maxRssBytes: number };

/** A process's resident memory, 0 once it is gone. */
function rssBytes(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** How either engine starts `codex app-server`: the codex, PATH and overrides its turns get (config.toml read at each start). */
export function appServerLaunch(
  options: CodexLaunchOptions,
  rest: Pick<PoolLaunch, "requestTimeoutMs" | "log" | "restartDelayMs">,
): PoolLaunch {
  return {
    argv: () => [options.codex.path, "app-server", ...codexOverrides(options).flatMap((override) => ["-c", override])],
    env: withPathDirs(options.env, options.codex.pathDirs),
    codexPath: options.codex.path,
    ...rest,
  };
}

/** What the pool hands to turn handling: what its processes say, and the turns a dying one ends. */
export interface PoolTurns {
  onNotification(member: PooledProcess, message: ServerNotification): void;
  onRequest(member: PooledProcess, connection: AppServerConnection, message: ServerRequest): void;
  endTurn(turn: TurnSession, error?: EngineError): void;
}

export type LoadedThread = {
  /** Warnings codex gave before the thread's turn started (some come before the turn is ours), shown when it starts. */
  warnings: string[];
  /** The sandbox the thread runs with now; undefined until it is opened. */
  sandbox: SandboxMode | undefined;
};

/** One app-server process of the pool: started on demand, restarted after a delay when it dies. */
export class PooledProcess {
  connection: AppServerConnection | undefined;
  /** The process from its spawn until it exits, initialized or not: what `kill` must reach. */
  private spawned: AppServerConnection | undefined;
  private starting: Promise<AppServerConnection> | undefined;
  /** Why the last process stopped, told to the turns refused while it waits to restart. */
  private lastError: EngineError | undefined;
  private deathsInARow = 0;
  private notBefore = 0;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  closed = false;
  /** No turn will come any more: a process replaced or dead is not started again ahead of one. */
  draining = false;
  readonly threads = new Map<string, LoadedThread>();
  readonly turns = new Map<string, TurnSession>();
  /**
   * Turns given to this process and not over yet, counted from the moment it was picked: a turn
   * enters `turns` only once its thread is open, and a burst of new turns would all tie at zero.
   */
  claimed = 0;
  /** Threads loaded since the process started: what RecycleLimits.maxThreads counts. */
  private threadsLoaded = 0;
  /** The process being replaced, until it has exited: its exit is no death, and stopping waits for it. */
  private retiring: AppServerConnection | undefined;

  constructor(
    readonly index: number,
    private readonly pool: AppServerPool,
  ) {}

  get alive(): boolean {
    return this.connection?.alive === true;
  }

  /** Dead and waiting out its restart delay: a turn sent here now would be refused as busy. */
  get restartPending(): boolean {
    return !this.alive && !this.starting && this.notBefore > Date.now();
  }

  ensure(): Promise<AppServerConnection> {
    if (this.connection?.alive) return Promise.resolve(this.connection);
    if (this.closed) return Promise.reject(new EngineError("the app-server engine is stopped"));
    const wait = this.notBefore - Date.now();
    if (wait > 0 && !this.starting) {
      // Rather than hold the request (and its response headers) for up to the longest restart delay.
      const seconds = Math.ceil(wait / 1000);
      const why = this.lastError ? ` (${this.lastError.message})` : "";
      return Promise.reject(new EngineBusyError(`codex app-server is restarting after it stopped${why}; try again in ${seconds} s`, seconds));
    }
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  thread(threadId: string): LoadedThread {
    let thread = this.threads.get(threadId);
    if (!thread) {
      thread = { warnings: [], sandbox: undefined };
      this.threads.set(threadId, thread);
      this.threadsLoaded++;
    }
    return thread;
  }

  succeeded(): void {
    this.deathsInARow = 0;
  }

  private start(): Promise<AppServerConnection> {
    return this.pool.oneAtATime(() => this.spawn());
  }

  private async spawn(): Promise<AppServerConnection> {
    if (this.closed) throw new EngineError("the app-server engine is stopped");
    // Checked at each start, not each turn: a running app-server does not need its file any more.
    assertExecutable(this.pool.launch.codexPath);
    const connection = new AppServerConnection(this.pool.launch.argv(), this.pool.launch.env, {
      notification: (message) => this.pool.turns.onNotification(this, message),
      request: (message) => this.pool.turns.onRequest(this, connection, message),
      exit: (error) => this.onExit(connection, error),
      skipped: (line, reason) =>
        this.pool.launch.log.warn("codex app-server sent a line that was skipped", { process: this.index, reason, line: line.slice(0, 200) }),
    }, this.pool.launch.requestTimeoutMs);
    this.spawned = connection;
    try {
      await connection.initialize();
    } catch (err) {
      const error = err instanceof EngineError ? err : new EngineError(String(err));
      void connection.stop(0);
      // Stopping it reports "was stopped"; why the handshake failed says more.
      this.lastError = error;
      throw error;
    }
    this.connection = connection;
    this.threadsLoaded = 0;
    this.pool.launch.log.debug("codex app-server started", { process: this.index, pid: connection.pid });
    return connection;
  }

  private onExit(connection: AppServerConnection, error: EngineError): void {
    if (this.connection === connection) this.connection = undefined;
    if (this.spawned === connection) this.spawned = undefined;
    this.lastError = error;
    for (const threadId of this.threads.keys()) this.pool.forget(threadId, this);
    this.threads.clear();
    for (const turn of this.turns.values()) this.pool.turns.endTurn(turn, error);
    this.turns.clear();
    if (this.closed || this.retiring === connection) return;
    if (this.draining) {
      this.pool.launch.log.warn("codex app-server died", { process: this.index, error: error.message });
      return;
    }
    const { first, max } = this.pool.launch.restartDelayMs ?? { first: 250, max: 30_000 };
    const delay = Math.min(max, first * 2 ** this.deathsInARow);
    this.deathsInARow++;
    this.notBefore = Date.now() + delay;
    this.pool.launch.log.warn("codex app-server died; restarting it", { process: this.index, error: error.message, delay_ms: delay });
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.ensure().catch((err: Error) => this.pool.launch.log.warn("codex app-server did not restart", { process: this.index, error: err.message }));
    }, delay);
  }

  /**
   * Replaces the process by a fresh one if it is idle and past a limit. The next turn that picks
   * it waits for the new one to start (a turn's thread resumes there with `thread/resume`).
   */
  recycleIfDue(limits: RecycleLimits | undefined): void {
    const connection = this.connection;
    if (!limits || this.claimed > 0 || this.retiring || this.closed || !connection?.alive) return;
    const rss = rssBytes(connection.pid);
    if (this.threadsLoaded < limits.maxThreads && rss <= limits.maxRssBytes) return;
    this.pool.launch.log.info("codex app-server recycled", { process: this.index, threads: this.threadsLoaded, rss_bytes: rss });
    this.retiring = connection;
    void connection.stop().finally(() => {
      this.retiring = undefined;
      // Started now rather than by the next turn, which would wait for it.
      if (!this.closed && !this.draining) this.ensure().catch(() => {});
    });
  }

  /** Stops the process, and waits for one being replaced to exit: neither outlives the server. */
  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    await this.starting?.catch(() => {});
    await Promise.all([this.connection?.stop(), this.retiring?.exited]);
  }

  kill(): void {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.spawned?.kill();
    this.retiring?.kill();
  }
}

/**
 * The long-lived `codex app-server` processes and which one holds each loaded thread. It knows
 * processes (start one at a time, restart, pick, stop) and nothing of what a turn says.
 */
export class AppServerPool {
  readonly members: PooledProcess[];
  /** Which process holds each loaded thread. */
  private readonly owners = new Map<string, PooledProcess>();
  private starts: Promise<unknown> = Promise.resolve();

  constructor(
    size: number,
    readonly launch: PoolLaunch,
    readonly turns: PoolTurns,
    /** When processes that run turns are replaced by fresh ones; none: never. */
    private readonly recycle?: RecycleLimits,
  ) {
    this.members = Array.from({ length: Math.max(1, size) }, (_, index) => new PooledProcess(index, this));
  }

  /** Processes alive now, for /metrics. */
  alive(): number {
    return this.members.filter((member) => member.alive).length;
  }

  /** Whether a process holds this thread loaded. */
  holds(threadId: string): boolean {
    return this.owners.has(threadId);
  }

  /** `member` has loaded `threadId`: its next turns go there. */
  own(threadId: string, member: PooledProcess): void {
    this.owners.set(threadId, member);
  }

  forget(threadId: string, member: PooledProcess): void {
    if (this.owners.get(threadId) === member) this.owners.delete(threadId);
  }

  /** codex no longer has the thread loaded (it archived it): no process holds it any more. */
  drop(threadId: string): void {
    this.owners.get(threadId)?.threads.delete(threadId);
    this.owners.delete(threadId);
  }

  /**
   * Runs process starts one after another: two app-servers that start together on a CODEX_HOME
   * without a state database yet race to create it, and one exits with "failed to initialize
   * sqlite state runtime".
   */
  oneAtATime<T>(start: () => Promise<T>): Promise<T> {
    const started = this.starts.then(start, start);
    this.starts = started.catch(() => {});
    return started;
  }

  /**
   * The process for a request on `threadId`: the thread's own while it lives, else the least busy
   * one that can take it now (fewest turns claimed, then fewest threads loaded).
   */
  pick(threadId: string | undefined): PooledProcess {
    const owner = threadId === undefined ? undefined : this.owners.get(threadId);
    if (owner?.alive) return owner;
    // One waiting to restart would refuse the turn as busy: any other, however loaded, is better.
    const available = this.members.filter((member) => !member.restartPending);
    const candidates = available.length > 0 ? available : this.members;
    const load = (member: PooledProcess) => member.claimed + (member.alive ? 0 : 0.5);
    return candidates.reduce((best, member) => {
      const [a, b] = [load(member), load(best)];
      return a < b || (a === b && member.threads.size < best.threads.size) ? member : best;
    });
  }

  /** The process for a turn, busy with it from now on; `done` once the turn is over. */
  claim(threadId: string | undefined): { member: PooledProcess; done(): void } {
    const member = this.pick(threadId);
    member.claimed++;
    let released = false;
    return {
      member,
      done: () => {
        if (released) return;
        released = true;
        member.claimed--;
        member.recycleIfDue(this.recycle);
      },
    };
  }

  /** Starts the processes now rather than at the first turn; failures are left for that turn to report. */
  warm(): void {
    for (const member of this.members) member.ensure().catch(() => {});
  }

  drain(): void {
    for (const member of this.members) member.draining = true;
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((member) => member.stop()));
  }
}
