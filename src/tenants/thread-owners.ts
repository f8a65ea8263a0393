import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Which tenant each codex thread belongs to. codex's own store knows no tenants, so the server
 * keeps this map itself, durably (ownership outlives a restart). Asynchronous, so that a shared
 * store (several replicas) can stand behind the same interface.
 */
export interface ThreadOwners {
  /** The tenant that started the thread; undefined for one started without tenants (by the codex CLI, or before). */
  ownerOf(threadId: string): Promise<string | undefined>;
  /** The thread is `tenant`'s, unless it already belongs to someone: the first claim stays. */
  claim(threadId: string, tenant: string): Promise<void>;
  /** The thread is no one's any more (archived). */
  forget(threadId: string): Promise<void>;
  close(): void;
}

/** Opening the state database failed; its message is one line. */
export class ThreadOwnersError extends Error {}

/** The file the map is kept in, under --state-dir. */
export const THREAD_OWNERS_FILE = "thread-owners.sqlite";

/** The map in a SQLite file (`:memory:` for none): one row a thread, written before the claim returns. */
export class SqliteThreadOwners implements ThreadOwners {
  private readonly db: Database;
  private readonly select;
  private readonly insert;
  private readonly remove;

  constructor(path: string) {
    try {
      if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      this.db = new Database(path, { create: true, strict: true });
      // WAL: a reader (a list's lookups) never waits for a claim, and a claim is one small append.
      this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
      this.db.exec("CREATE TABLE IF NOT EXISTS thread_owners (thread_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, claimed_at TEXT NOT NULL) WITHOUT ROWID");
    } catch (err) {
      throw new ThreadOwnersError(`cannot open the thread owners database ${path}: ${(err as Error).message}`);
    }
    this.select = this.db.query<{ tenant: string }, [string]>("SELECT tenant FROM thread_owners WHERE thread_id = ?");
    this.insert = this.db.query("INSERT OR IGNORE INTO thread_owners (thread_id, tenant, claimed_at) VALUES (?, ?, ?)");
    this.remove = this.db.query("DELETE FROM thread_owners WHERE thread_id = ?");
  }

  async ownerOf(threadId: string): Promise<string | undefined> {
    return this.select.get(threadId)?.tenant;
  }

  async claim(threadId: string, tenant: string): Promise<void> {
    this.insert.run(threadId, tenant, new Date().toISOString());
  }

  async forget(threadId: string): Promise<void> {
    this.remove.run(threadId);
  }

  close(): void {
    this.db.close();
  }
}
