/** One frame of a run's stream: a codex thread event, or the final `done`. */
export type RunEvent = { id: number; event: string; data: string };

/** The most events a reader gets at once: a replay of a full log goes out in pieces, not as one string of up to 16 MiB. */
const MAX_BATCH = 512;

export type EventLogLimits = { maxEvents: number; maxBytes: number };

/**
 * A run's events, kept for replay and followed live by any number of readers. Bounded: past
 * `maxEvents` or `maxBytes`, the oldest events are dropped, but only once every live reader has
 * read them; while a reader lags that far behind, `append` waits for it (backpressure, as a
 * client reading codex's stream directly would give). A later reader that asks for dropped
 * events starts at the oldest one kept. The last event, `done`, is always kept, and always read.
 */
export class EventLog {
  private readonly events: RunEvent[] = [];
  private bytes = 0;
  private closed = false;
  private readonly wakers = new Set<() => void>();
  /** The last id each live reader has been given. */
  private readonly positions = new Map<symbol, number>();
  private readonly progressWaiters = new Set<() => void>();

  constructor(private readonly limits: EventLogLimits) {}

  /** The size of the events' data it holds now, as `maxBytes` counts it. */
  get size(): number {
    return this.bytes;
  }

  async append(event: RunEvent): Promise<void> {
    this.events.push(event);
    this.bytes += event.data.length;
    this.trim();
    this.wake();
    while (this.overCap()) {
      await new Promise<void>((resolve) => this.progressWaiters.add(resolve));
      this.trim();
    }
  }

  /**
   * Appends the last event (a run's `done`): no event follows it, and readers end once they have
   * read it. Closed in the same step as it is added, so no reader can find it there unclosed.
   */
  async end(last: RunEvent): Promise<void> {
    this.closed = true;
    await this.append(last);
  }

  private overCap(): boolean {
    return this.events.length > 1 && (this.events.length > this.limits.maxEvents || this.bytes > this.limits.maxBytes);
  }

  private trim(): void {
    // Most appends are under the caps: no need to look for the slowest reader then.
    if (!this.overCap()) return;
    const slowest = Math.min(...this.positions.values());
    while (this.overCap() && (this.events[0] as RunEvent).id <= slowest) {
      this.bytes -= (this.events.shift() as RunEvent).data.length;
    }
  }

  private wake(): void {
    for (const wake of this.wakers) wake();
    this.wakers.clear();
  }

  private progressed(): void {
    for (const resolve of this.progressWaiters) resolve();
    this.progressWaiters.clear();
  }

  /** The index of the first event with an id above `id` (ids only grow): a reader copies only what is new to it. */
  private firstAfter(id: number): number {
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.events[middle] as RunEvent).id > id) high = middle;
      else low = middle + 1;
    }
    return low;
  }

  /**
   * Every event after `afterId`, then the new ones as they come, until the log closes or `signal`
   * aborts: in batches of whatever is there at each wake (at most MAX_BATCH), so that a reader
   * keeping up writes one chunk for many events. An `afterId` past the end reads on from the end,
   * and every reading of a closed log ends with its last event: a client that claims to have seen
   * more than there is still gets `done`.
   */
  async *read(afterId: number, signal: AbortSignal): AsyncGenerator<RunEvent[]> {
    const reader = Symbol("reader");
    const lastId = this.events.at(-1)?.id ?? 0;
    let last = Math.min(afterId, this.closed ? lastId - 1 : lastId);
    this.positions.set(reader, last);
    try {
      while (!signal.aborted) {
        const from = this.firstAfter(last);
        const batch = this.events.slice(from, from + MAX_BATCH);
        if (batch.length > 0) {
          yield batch;
          last = (batch.at(-1) as RunEvent).id;
          this.positions.set(reader, last);
          this.progressed();
          continue;
        }
        // Only once a fresh look finds nothing new: more may have come while the reader was away.
        if (this.closed) return;
        await new Promise<void>((resolve) => {
          const onAbort = () => resolve();
          signal.addEventListener("abort", onAbort, { once: true });
          this.wakers.add(() => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          });
        });
      }
    } finally {
      this.positions.delete(reader);
      this.progressed();
    }
  }
}
