import type { StoredThread, ThreadListQuery, ThreadReadQuery, ThreadStore } from "../engine/types";
import type { ThreadDetail, ThreadList, ThreadSummary } from "../schemas";
import { ThreadBusyError, type RunRegistry } from "./registry";

const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();

/**
 * codex's threads (the engine's ThreadStore) with what the registry knows of them: whether a
 * turn runs on one now, and no archive while it does or a turn starting while it is archived.
 */
export class ThreadService {
  /** History rebuilds under way, so that two reads of the same thread share one. */
  private readonly rebuilding = new Map<string, Promise<void>>();

  constructor(
    private readonly store: ThreadStore,
    private readonly runs: RunRegistry,
  ) {}

  private summary(thread: StoredThread): ThreadSummary {
    return {
      id: thread.id,
      name: thread.name,
      preview: thread.preview,
      cwd: thread.cwd,
      created_at: iso(thread.createdAt),
      updated_at: iso(thread.updatedAt),
      status: this.runs.runningOn(thread.id) ? "running" : "idle",
    };
  }

  async list(query: ThreadListQuery): Promise<ThreadList> {
    const page = await this.store.list(query);
    return { threads: page.threads.map((thread) => this.summary(thread)), next_cursor: page.nextCursor };
  }

  async read(threadId: string, query: ThreadReadQuery): Promise<ThreadDetail> {
    let history = await this.store.read(threadId, query);
    if (history.historyMissing && !this.runs.runningOn(threadId)) {
      await this.rebuild(threadId);
      history = await this.store.read(threadId, query);
    }
    const turns = history.turns.map(({ id, input, items, status, usage }) => ({ id, input, items, status, usage }));
    // A process that does not run the turn (exec's, seen from the app-server that answers) sees
    // the turn going on as interrupted: it has no end yet.
    const newest = query.cursor === undefined ? turns.at(-1) : undefined;
    if (newest?.status === "interrupted" && this.runs.runningOn(threadId)) newest.status = "in_progress";
    return { ...this.summary(history), turns, next_cursor: history.nextCursor };
  }

  private rebuild(threadId: string): Promise<void> {
    let rebuilt = this.rebuilding.get(threadId);
    if (!rebuilt) {
      rebuilt = this.runs
        .holdThread(threadId, "having its history rebuilt", () => this.store.rebuildHistory(threadId))
        .finally(() => this.rebuilding.delete(threadId));
      this.rebuilding.set(threadId, rebuilt);
    }
    return rebuilt;
  }

  async rename(threadId: string, name: string): Promise<ThreadSummary> {
    return this.summary(await this.store.rename(threadId, name));
  }

  /** Refused while a turn runs on the thread; no turn starts on it until it is archived. */
  async archive(threadId: string): Promise<void> {
    await this.runs.holdThread(threadId, "being archived", () => this.store.archive(threadId));
  }

  /** Refused while a turn runs on the thread: its history is not whole until the turn ends. */
  async fork(threadId: string, turnId: string | undefined): Promise<string> {
    const busy = this.runs.runningOn(threadId);
    if (busy) throw new ThreadBusyError(threadId, busy.id);
    return this.store.fork(threadId, turnId === undefined ? {} : { lastTurnId: turnId });
  }
}
