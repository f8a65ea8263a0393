import { ThreadNotFoundError, type ThreadListQuery } from "../engine/types";
import type { ThreadList } from "../schemas";
import { canSee, type Viewer } from "./tenant";
import type { ThreadOwners } from "./thread-owners";

/**
 * How many pages of codex's list one GET /threads reads at most for a tenant that owns few of the
 * threads: past it the page is shorter than asked, and its next_cursor goes on from where it stopped.
 */
export const MAX_LIST_ROUNDS = 10;

/**
 * Which threads a tenant may see: its own (the thread → tenant map), every one for an admin. Any
 * other answers as an unknown id does (ThreadNotFoundError), so that a tenant cannot tell that it
 * exists. Without a map (no tokens file) every tenant is the implicit admin.
 */
export class ThreadAccess {
  constructor(private readonly owners: ThreadOwners | undefined) {}

  async canSee(threadId: string, viewer: Viewer): Promise<boolean> {
    if (viewer.admin) return true;
    return canSee(viewer, await this.owners?.ownerOf(threadId));
  }

  /** Throws ThreadNotFoundError unless `viewer` may see the thread. */
  async check(threadId: string, viewer: Viewer): Promise<void> {
    if (!(await this.canSee(threadId, viewer))) throw new ThreadNotFoundError(threadId);
  }

  /** A thread the tenant made (a fork) is its own. */
  async claim(threadId: string, tenant: string): Promise<void> {
    await this.owners?.claim(threadId, tenant);
  }

  async forget(threadId: string): Promise<void> {
    await this.owners?.forget(threadId);
  }

  /**
   * A page of the threads `viewer` may see. codex pages all threads, so a tenant's page is
   * gathered from as many of codex's pages as it takes, each asking for just the threads still
   * missing: the last one then ends exactly after the last thread kept, and its cursor is the
   * page's next_cursor, so that no thread is skipped or repeated. After MAX_LIST_ROUNDS the page is
   * returned short (a page may hold fewer than `limit` threads; only a null next_cursor ends the list).
   */
  async list(query: ThreadListQuery, viewer: Viewer, list: (query: ThreadListQuery) => Promise<ThreadList>): Promise<ThreadList> {
    if (viewer.admin) return list(query);
    const threads: ThreadList["threads"] = [];
    let cursor = query.cursor;
    for (let round = 0; round < MAX_LIST_ROUNDS; round++) {
      const page = await list({ ...query, limit: query.limit - threads.length, ...(cursor !== undefined && { cursor }) });
      for (const thread of page.threads) if (await this.canSee(thread.id, viewer)) threads.push(thread);
      if (page.next_cursor === null || threads.length === query.limit) return { threads, next_cursor: page.next_cursor };
      cursor = page.next_cursor;
    }
    return { threads, next_cursor: cursor ?? null };
  }
}
