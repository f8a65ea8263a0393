import type { AppServerConnection } from "./connection";
import { AppServerPool, type PoolLaunch, type PoolTurns } from "./pool";
import type { ThreadHost } from "./thread-store";

const METHOD_NOT_FOUND = -32601;

/** Processes that run no turns: their notifications concern no one, and they ask nothing a server could answer. */
const NO_TURNS: PoolTurns = {
  onNotification() {},
  onRequest(_member, connection, message) {
    connection.respondError(message.id, METHOD_NOT_FOUND, `codex-http-server does not answer ${message.method} here`);
  },
  endTurn() {},
};

export type StandaloneThreadHostOptions = {
  launch: PoolLaunch;
  exists(threadId: string): boolean;
  /** Resolves once no turn's codex is still writing the thread (an exec turn's process exits after its turn). */
  settled(threadId: string): Promise<void> | undefined;
};

/**
 * Thread management for an engine without app-server processes of its own (exec): one
 * `codex app-server`, started at the first request and kept, for every request that loads no
 * thread. A fork or a history rebuild loads one, and the process that loaded it keeps the
 * thread's writer lock until it exits (codex 0.163 unloads an unsubscribed thread only after 30
 * idle minutes), while the next `codex exec` turn on that thread needs the lock: those requests
 * get a process of their own, which has exited when they return.
 */
export class StandaloneThreadHost implements ThreadHost {
  private readonly reader: AppServerPool;
  /** The processes of loading requests, for `alive` and for shutdown. */
  private readonly loaders = new Set<AppServerPool>();

  constructor(private readonly options: StandaloneThreadHostOptions) {
    this.reader = new AppServerPool(1, options.launch, NO_TURNS);
  }

  exists(threadId: string): boolean {
    return this.options.exists(threadId);
  }

  async connection(threadId?: string): Promise<AppServerConnection> {
    if (threadId !== undefined) await this.options.settled(threadId);
    return this.reader.pick(undefined).ensure();
  }

  async loading<T>(threadId: string, load: (connection: AppServerConnection) => Promise<{ value: T; loaded: string }>): Promise<T> {
    await this.options.settled(threadId);
    const loader = new AppServerPool(1, this.options.launch, NO_TURNS);
    this.loaders.add(loader);
    try {
      return (await load(await loader.pick(undefined).ensure())).value;
    } finally {
      await loader.close();
      this.loaders.delete(loader);
    }
  }

  archived(): void {}

  /** codex processes running now, for /metrics. */
  alive(): number {
    return this.reader.alive() + [...this.loaders].reduce((sum, loader) => sum + loader.alive(), 0);
  }

  async close(): Promise<void> {
    await Promise.all([this.reader, ...this.loaders].map((pool) => pool.close()));
  }

  kill(): void {
    for (const pool of [this.reader, ...this.loaders]) for (const member of pool.members) member.kill();
  }
}
