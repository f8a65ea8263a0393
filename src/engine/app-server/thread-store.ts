import { rolloutTurnUsage } from "../rollout-usage";
import {
  InvalidCursorError,
  type StoredThread,
  type StoredThreadPage,
  type StoredTurn,
  type ThreadHistory,
  type ThreadListQuery,
  ThreadNotFoundError,
  type ThreadReadQuery,
  type ThreadStore,
  TurnNotFoundError,
  type Usage,
} from "../types";
import { type AppServerConnection, RpcError } from "./connection";
import { toSdkItem } from "./event-mapper";
import type { AskForApproval, ResultOf, SandboxMode, Thread, ThreadSourceKind, Turn } from "./protocol";

type ThreadTurnsListResponse = ResultOf<"thread/turns/list">;

/**
 * The kinds of thread a user converses in. Left out, codex lists only interactive ones, which
 * leaves out `codex exec`'s (the exec engine's); subagents' threads are codex's own business.
 */
const LISTED_SOURCES: ThreadSourceKind[] = ["cli", "vscode", "exec", "appServer", "unknown"];

/**
 * The sandbox of a thread that the store loads (a fork, a history rebuild): the narrowest. The
 * thread's next turn asks for its own: codex keeps a loaded thread's settings when it is resumed
 * again, so the app-server engine records this one and sends the turn's policy when it differs.
 */
export const LOADED_SANDBOX: SandboxMode = "read-only";

/** How much of the first user message a summary carries. */
const PREVIEW_CHARS = 200;

/** Turns asked for at a time while looking for one of them. */
const TURN_SEARCH_PAGE = 100;

/** app-server's answer to a request whose parameters it refuses (an unknown cursor among them). */
const INVALID_REQUEST = -32600;

/** Where the store's requests go: the app-server processes of an engine. */
export interface ThreadHost {
  /** Whether codex has the thread stored, or a process has it loaded, and not archived. */
  exists(threadId: string): boolean;
  /** The process for a request that loads no thread: the one that has `threadId` loaded, if any. */
  connection(threadId?: string): Promise<AppServerConnection>;
  /**
   * Runs `load` where it may load a thread (a fork, a resume), and returns once the thread it
   * loaded is taken care of: a process that holds a loaded thread holds its writer lock, without
   * which no other process (a `codex exec` turn) can write to it.
   */
  loading<T>(threadId: string, load: (connection: AppServerConnection) => Promise<{ value: T; loaded: string }>): Promise<T>;
  /** codex has archived the thread, and unloaded it. */
  archived(threadId: string): void;
  /** The approval policy a thread loaded here must have for the host's turns; codex's default when undefined. */
  readonly approvalPolicy?: AskForApproval;
}

/** A codex cursor as this server gives it out: opaque, so that what codex puts in it may change. */
function encodeCursor(codexCursor: string | null): string | null {
  return codexCursor === null ? null : Buffer.from(codexCursor).toString("base64url");
}

/** Refuses, without asking codex, what cannot be a cursor this server gave out. */
function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const codexCursor = Buffer.from(cursor, "base64url").toString();
  if (codexCursor === "" || encodeCursor(codexCursor) !== cursor) throw new InvalidCursorError();
  return codexCursor;
}

/** A cursor that decodes but that codex refuses (another thread's, a stale one) is the client's mistake too. */
async function withCursor<T>(cursor: string | undefined, request: Promise<T>): Promise<T> {
  try {
    return await request;
  } catch (err) {
    if (cursor !== undefined && err instanceof RpcError && err.code === INVALID_REQUEST) throw new InvalidCursorError();
    throw err;
  }
}

function storedThread(thread: Thread): StoredThread {
  return {
    id: thread.id,
    name: thread.name,
    preview: [...thread.preview].slice(0, PREVIEW_CHARS).join(""),
    cwd: thread.cwd,
    createdAt: thread.createdAt,
    updatedAt: thread.updatedAt,
  };
}

/** A turn as history: its items mapped as a live turn's are, numbered in the order codex kept them. */
function storedTurn(turn: Turn, usage: Map<string, Usage>): StoredTurn {
  let next = 0;
  const input = turn.items
    .flatMap((item) => (item.type === "userMessage" ? item.content : []))
    .flatMap((part) => (part.type === "text" ? [part.text] : []))
    .join("\n");
  return {
    id: turn.id,
    input,
    items: turn.items.flatMap((item) => toSdkItem(item, () => `item_${next++}`) ?? []),
    status: turn.status === "inProgress" ? "in_progress" : turn.status,
    usage: usage.get(turn.id) ?? null,
    startedAt: turn.startedAt,
  };
}

/**
 * The threads in CODEX_HOME, through app-server's thread methods, for either engine: the host
 * says which process to ask. Reads never load a thread, so that they never take the writer lock
 * a turn running on it (in this process or a `codex exec`) needs; only a fork and a history
 * rebuild do, through `host.loading`.
 */
export class AppServerThreadStore implements ThreadStore {
  constructor(private readonly host: ThreadHost) {}

  private mustExist(threadId: string): void {
    if (!this.host.exists(threadId)) throw new ThreadNotFoundError(threadId);
  }

  async list({ limit, cursor, cwd, search }: ThreadListQuery): Promise<StoredThreadPage> {
    const codexCursor = decodeCursor(cursor);
    const connection = await this.host.connection();
    const page = await withCursor(
      codexCursor,
      connection.request("thread/list", {
        limit,
        ...(codexCursor !== undefined && { cursor: codexCursor }),
        sourceKinds: LISTED_SOURCES,
        ...(cwd !== undefined && { cwd }),
        ...(search !== undefined && { searchTerm: search }),
        // From codex's state database, where both engines record every thread they start: its
        // cursor breaks ties between threads created in the same second (the scan of the rollout
        // files pages by the second and skips them), and it answers in milliseconds where a search
        // through the files reads every one (0.6 s for 1,000 threads).
        useStateDbOnly: true,
      }),
    );
    return { threads: page.data.map(storedThread), nextCursor: encodeCursor(page.nextCursor) };
  }

  async read(threadId: string, { turnsLimit, cursor }: ThreadReadQuery): Promise<ThreadHistory> {
    this.mustExist(threadId);
    const codexCursor = decodeCursor(cursor);
    const connection = await this.host.connection(threadId);
    const read = connection.request("thread/read", { threadId });
    const [{ thread }, page, usage] = await Promise.all([
      read,
      withCursor(
        codexCursor,
        connection.request("thread/turns/list", {
          threadId,
          ...(codexCursor !== undefined && { cursor: codexCursor }),
          limit: turnsLimit,
          sortDirection: "desc",
          itemsView: "full",
        }),
      ),
      // While codex pages the turns.
      read.then(({ thread }) => this.turnUsage(connection, thread)),
    ]);
    return {
      ...storedThread(thread),
      turns: page.data.toReversed().map((turn) => storedTurn(turn, usage)),
      nextCursor: encodeCursor(page.nextCursor),
      // A thread with a first user message has had a turn.
      historyMissing: codexCursor === undefined && page.data.length === 0 && thread.preview !== "",
    };
  }

  /**
   * The usage of the thread's turns, by turn id, from its rollout, and for a fork from those of
   * the threads it comes from: a fork's rollout refers to the turns it carries, under their ids.
   */
  private async turnUsage(connection: AppServerConnection, thread: Thread): Promise<Map<string, Usage>> {
    const usage = new Map<string, Usage>();
    const seen = new Set<string>();
    for (let at: Thread | undefined = thread; at !== undefined && !seen.has(at.id); ) {
      seen.add(at.id);
      for (const [turnId, turnUsage] of at.path === null ? [] : await rolloutTurnUsage(at.path)) {
        if (!usage.has(turnId)) usage.set(turnId, turnUsage);
      }
      const parent: string | null = at.forkedFromId;
      // An archived origin is still read; a deleted one leaves its turns without usage.
      at = parent === null ? undefined : await connection.request("thread/read", { threadId: parent }).then(({ thread }) => thread, () => undefined);
    }
    return usage;
  }

  async rebuildHistory(threadId: string): Promise<void> {
    this.mustExist(threadId);
    // codex fills in a thread's turns when it loads it, and keeps them.
    await this.host.loading(threadId, async (connection) => {
      await connection.request("thread/resume", { threadId, excludeTurns: true, ...this.loadSettings() });
      return { value: undefined, loaded: threadId };
    });
  }

  async rename(threadId: string, name: string): Promise<StoredThread> {
    this.mustExist(threadId);
    const connection = await this.host.connection(threadId);
    await connection.request("thread/name/set", { threadId, name });
    return storedThread((await connection.request("thread/read", { threadId })).thread);
  }

  async archive(threadId: string): Promise<void> {
    this.mustExist(threadId);
    const connection = await this.host.connection(threadId);
    await connection.request("thread/archive", { threadId });
    this.host.archived(threadId);
  }

  async fork(threadId: string, { lastTurnId }: { lastTurnId?: string }): Promise<string> {
    this.mustExist(threadId);
    if (lastTurnId !== undefined && !(await this.hasTurn(threadId, lastTurnId))) throw new TurnNotFoundError(threadId, lastTurnId);
    return this.host.loading(threadId, async (connection) => {
      const { thread } = await connection.request("thread/fork", {
        threadId,
        ...(lastTurnId !== undefined && { lastTurnId }),
        excludeTurns: true,
        ...this.loadSettings(),
      });
      return { value: thread.id, loaded: thread.id };
    });
  }

  private loadSettings(): { sandbox: SandboxMode; approvalPolicy?: AskForApproval } {
    return { sandbox: LOADED_SANDBOX, ...(this.host.approvalPolicy && { approvalPolicy: this.host.approvalPolicy }) };
  }

  /** Whether the thread has this turn, looked for a page of bare turns at a time. */
  private async hasTurn(threadId: string, turnId: string): Promise<boolean> {
    const connection = await this.host.connection(threadId);
    let cursor: string | null = null;
    do {
      const page: ThreadTurnsListResponse = await connection.request("thread/turns/list", {
        threadId,
        ...(cursor !== null && { cursor }),
        limit: TURN_SEARCH_PAGE,
        itemsView: "notLoaded",
      });
      if (page.data.some((turn) => turn.id === turnId)) return true;
      cursor = page.nextCursor;
    } while (cursor !== null);
    return false;
  }
}
