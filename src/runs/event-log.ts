/** One frame of a run's stream: a codex thread event, or the final `done`. */
export type RunEvent = { id: number; event: string; data: string };

export type EventLogLimits = { maxEvents: number; maxBytes: number };

/**
 * A run's events, kept for replay and followed live by any number of readers. Bounded: past
 * `maxEvents` or `maxBytes`, the oldest events are dropped (a reader that asks for them starts at
 * the oldest one kept); the last event, `done`, is always kept.
 */
export class EventLog {
  private readonly events: RunEvent[] = [];
  private bytes = 0;
  private closed = false;
  private readonly wakers = new Set<() => void>();

  constructor(private readonly limits: EventLogLimits) {}

  append(event: RunEvent): void {
    this.events.push(event);
    this.bytes += event.data.length;
    while (this.events.length > 1 && (this.events.length > this.limits.maxEvents || this.bytes > this.limits.maxBytes)) {
      this.bytes -= (this.events.shift() as RunEvent).data.length;
    }
    this.wake();
  }

  /** No event follows; readers end once they have read everything. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  get size(): number {
    return this.events.length;
  }

  private wake(): void {
    for (const wake of this.wakers) wake();
    this.wakers.clear();
  }

  /** Every event after `afterId`, then each new one as it comes, until the log closes or `signal` aborts. */
  async *read(afterId: number, signal: AbortSignal): AsyncGenerator<RunEvent> {
    let last = afterId;
    while (!signal.aborted) {
      const next = this.events.filter((event) => event.id > last);
      for (const event of next) {
        if (signal.aborted) return;
        last = event.id;
        yield event;
      }
      // Only once a fresh look finds nothing new: more may have come while the reader was away.
      if (next.length === 0) {
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
    }
  }
}
