import { describeTurnFailure } from "../engine/codex-auth";
import { type ApprovalDecision, type ApprovalRequestedEvent, type Engine, EngineBusyError, type TurnOptions } from "../engine/types";
import type { Logger } from "../log";
import type { RunObserver } from "../metrics";
import { type Tenant, tenantLogName } from "../tenants/tenant";
import type { ThreadOwners } from "../tenants/thread-owners";
import type { DoneData, RunQueuedEvent, RunStatus, RunSummary, Usage } from "../schemas";
import { EventLog, type EventLogLimits, type RunEvent } from "./event-log";

export type { RunEvent };
export type StopReason = "cancelled" | "timeout";
export type { DoneData, RunStatus, RunSummary };

export type TurnInput = {
  input: string;
  workDir: string;
  /** Continue this codex thread instead of starting one. */
  threadId?: string;
  options?: TurnOptions;
  replaces?: string;
  /** Where this turn's webhooks go, besides the server's own (`--webhook-url`); already allowed. */
  webhookUrl?: string;
  /** Whose turn it is: its thread becomes this tenant's, and only it (and admins) see the run. */
  tenant?: Tenant;
};

/**
 * Told what a run's webhooks announce. Called synchronously from the run: it must return at once
 * and never throw, so that notifications never slow a turn or its stream.
 */
export type RunNotifier = {
  /** The run has ended, however: its `done` is in its log. */
  runDone(run: Run, done: DoneData, finishedAt: Date): void;
  /** codex asks a client before it acts; `user_confirm` can answer it from now on. */
  approvalRequested(run: Run, event: ApprovalRequestedEvent): void;
};

export type RunOptions = EventLogLimits & {
  /** How long a run with no client watching goes on before it is cancelled; 0: at once. */
  reattachGraceMs: number;
  now: () => number;
  observer?: RunObserver;
  notifier?: RunNotifier;
  /** Where a new thread is recorded as the turn's tenant's, before its `thread.started` reaches anyone. */
  threadOwners?: Pick<ThreadOwners, "claim">;
  /** The turn waits for its thread, at this place in the queue (1: next), until `moveInQueue(undefined)`. */
  queuePosition?: number;
  /**
   * A running turn from which the engine sends no event for this long is stopped with reason
   * `timeout` (undefined: never). The time an approval waits for a client does not count: the
   * approval timeout bounds that wait.
   */
  stallTimeoutMs?: number;
  /** Told of each event as the run appends it, `done` included (replicas: runs/cluster.ts writes them to the shared store). */
  tap?: (run: Run, event: RunEvent) => void;
};

/** The `done` error of a turn the stall watchdog stopped. */
export function stalledError(stallTimeoutMs: number): string {
  return `turn stalled: codex sent no event for ${stallTimeoutMs / 1000} s (--stall-timeout)`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function finalResponse(text: string | null, structured: boolean): unknown {
  if (text === null || !structured) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * One turn. It drives the engine on its own, keeps its numbered events in a bounded log that any
 * number of clients can watch (and replay from an id), and always ends with exactly one `done`,
 * whatever happened to codex. It knows neither HTTP nor codex.
 */
export class Run {
  private readonly controller = new AbortController();
  private stopReason: StopReason | undefined;
  /** What `done` says about the stop: the first reason's. */
  private stopError: string | undefined;
  private stallTimer: ReturnType<typeof setTimeout> | undefined;
  /** Since when the turn has waited for the engine's next event; undefined while it is not waiting. */
  private waitingForEngineSince: number | undefined;
  private readonly events: EventLog;
  private watchers = 0;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly startedAt = new Date();
  private finishedAt: Date | undefined;
  private outcome: DoneData | undefined;
  /** While the turn waits for its thread: its place in the queue; undefined once it may run. */
  private waitingAt: number | undefined;
  private queueMoved: (() => void) | undefined;
  /** Approvals this turn's engine asked for that no one has answered yet. */
  private readonly pendingApprovals = new Set<string>();
  threadId: string | null;
  /** Resolves once `done` is in the log. */
  readonly finished: Promise<void>;
  /**
   * Resolves once the engine has taken the turn (its first event) or ended it; with the engine's
   * refusal when it was too busy to start it, in which case the run has no events at all.
   */
  readonly admitted: Promise<EngineBusyError | undefined>;
  private admit!: (refusal: EngineBusyError | undefined) => void;
  /** Why the engine refused the turn, if it did. */
  refusal: EngineBusyError | undefined;

  constructor(
    readonly id: string,
    private readonly engine: Engine,
    readonly turn: TurnInput,
    private readonly log: Logger,
    private readonly options: RunOptions,
  ) {
    this.events = new EventLog(options);
    this.threadId = turn.threadId ?? null;
    this.waitingAt = options.queuePosition;
    this.admitted = new Promise((resolve) => {
      this.admit = resolve;
    });
    // Only an engine that can refuse a turn makes the caller wait for its answer; a waiting turn's
    // stream opens at once, and a later refusal ends it like any error.
    if (!engine.refusesWhenBusy || this.waitingAt !== undefined) this.admit(undefined);
    this.finished = this.drive();
  }

  get running(): boolean {
    return this.outcome === undefined;
  }

  /** What its event log holds, in bytes of event data: fixed once the run has finished. */
  get size(): number {
    return this.events.size;
  }

  /** Answers one of this turn's pending approvals; false when it has no such approval pending. */
  resolveApproval(approvalId: string, decision: ApprovalDecision): boolean {
    if (!this.pendingApprovals.has(approvalId)) return false;
    return this.engine.resolveApproval?.(approvalId, decision) ?? false;
  }

  /** The waiting turn's new place in the queue, or undefined: it may run now. Its watchers hear of each new place. */
  moveInQueue(position: number | undefined): void {
    this.waitingAt = position;
    this.queueMoved?.();
  }

  /**
   * Ends the turn early (a waiting one without ever starting it); the first reason given, and its
   * error, are the ones `done` reports.
   */
  stop(reason: StopReason, error = `turn ${reason}`): void {
    if (this.stopReason === undefined) {
      this.stopReason = reason;
      this.stopError = error;
    }
    this.controller.abort();
    this.queueMoved?.();
  }

  /**
   * The events after `afterId`, then live ones until `done`, in batches (see EventLog.read). While
   * nobody watches a running run, it is cancelled after the reattach grace.
   */
  async *watch(afterId: number, signal: AbortSignal): AsyncGenerator<RunEvent[]> {
    this.watchers++;
    clearTimeout(this.graceTimer);
    try {
      yield* this.events.read(afterId, signal);
    } finally {
      this.watchers--;
      if (this.watchers === 0 && this.running) this.startGrace();
    }
  }

  private startGrace(): void {
    if (this.options.reattachGraceMs === 0) return this.stop("cancelled");
    this.graceTimer = setTimeout(() => {
      if (this.watchers === 0) this.stop("cancelled");
    }, this.options.reattachGraceMs);
  }

  /**
   * The turn goes back to waiting for the engine: the stall watchdog counts from now. One timer
   * serves the whole turn, rather than one cleared and armed again for every event on the hot
   * path: when it fires it looks at how long the wait has lasted. It does not count while the run itself is
   * busy (appending an event a slow reader holds up, `pauseStallWatch`) or while an approval waits
   * for a client; the next wait for the engine arms it again.
   */
  private watchForStall(): void {
    const { stallTimeoutMs } = this.options;
    if (stallTimeoutMs === undefined) return;
    this.waitingForEngineSince = performance.now();
    this.stallTimer ??= setTimeout(this.checkStall, stallTimeoutMs);
  }

  private pauseStallWatch(): void {
    this.waitingForEngineSince = undefined;
  }

  private readonly checkStall = (): void => {
    this.stallTimer = undefined;
    const stallTimeoutMs = this.options.stallTimeoutMs as number;
    if (this.waitingForEngineSince === undefined || this.pendingApprovals.size > 0 || !this.running) return;
    const waited = performance.now() - this.waitingForEngineSince;
    if (waited >= stallTimeoutMs) this.stop("timeout", stalledError(stallTimeoutMs));
    else this.stallTimer = setTimeout(this.checkStall, stallTimeoutMs - waited);
  };

  summary(): RunSummary {
    return {
      id: this.id,
      thread_id: this.threadId,
      status: this.outcome?.status ?? (this.waitingAt === undefined ? "running" : "queued"),
      queue_position: this.outcome ? null : (this.waitingAt ?? null),
      started_at: this.startedAt.toISOString(),
      finished_at: this.finishedAt?.toISOString() ?? null,
      usage: this.outcome?.usage ?? null,
      replaces: this.turn.replaces ?? null,
    };
  }

  /** Until the turn may run or is stopped: a `run.queued` event for each new place in the queue. Returns how many it sent. */
  private async waitForThread(): Promise<number> {
    let sent = 0;
    let shown: number | undefined;
    while (this.waitingAt !== undefined && !this.controller.signal.aborted) {
      if (this.waitingAt === shown) {
        await new Promise<void>((resolve) => (this.queueMoved = resolve));
        continue;
      }
      shown = this.waitingAt;
      const event: RunQueuedEvent = { type: "run.queued", position: shown };
      await this.append({ id: ++sent, event: event.type, data: JSON.stringify(event) });
    }
    this.queueMoved = undefined;
    return sent;
  }

  private append(event: RunEvent): Promise<void> {
    this.options.tap?.(this, event);
    return this.events.append(event);
  }

  private async drive(): Promise<void> {
    // Only a waiting turn awaits anything here: any other starts codex within `start`, as before.
    let sequence = this.waitingAt === undefined ? 0 : await this.waitForThread();
    // A turn is timed and counted from when it leaves the queue.
    const startedAt = this.options.now();
    this.options.observer?.started();
    let usage: Usage | null = null;
    let lastMessage: string | null = null;
    let diff: string | null = null;
    let result: { status: RunStatus; error: string | null } | undefined;
    let first = true;
    try {
      // A turn stopped before it began never starts codex.
      const events = this.controller.signal.aborted
        ? []
        : this.engine.runTurn({ ...this.turn, signal: this.controller.signal });
      this.watchForStall();
      for await (const event of events) {
        this.pauseStallWatch();
        if (first) {
          first = false;
          this.options.observer?.firstEvent((this.options.now() - startedAt) / 1000);
          this.admit(undefined);
        }
        if (event.type === "thread.started") {
          this.threadId = event.thread_id;
          // Before the event is appended: a client that learns the id finds the thread its tenant's.
          if (this.turn.tenant && this.options.threadOwners) await this.options.threadOwners.claim(event.thread_id, this.turn.tenant.name);
        } else if (event.type === "item.completed" && event.item.type === "agent_message") lastMessage = event.item.text;
        else if (event.type === "turn.completed") {
          usage = event.usage;
          result = { status: "completed", error: null };
        } else if (event.type === "turn.failed") result = { status: "failed", error: describeTurnFailure(event.error.message) };
        else if (event.type === "turn.diff") diff = event.diff === "" ? null : event.diff;
        else if (event.type === "approval.requested") {
          // Before the append, which a slow reader can hold up: the hook need not wait for it.
          this.pendingApprovals.add(event.approval_id);
          this.options.notifier?.approvalRequested(this, event);
        }
        else if (event.type === "approval.resolved") this.pendingApprovals.delete(event.approval_id);
        await this.append({ id: ++sequence, event: event.type, data: JSON.stringify(event) });
        this.watchForStall();
      }
    } catch (err) {
      if (err instanceof EngineBusyError && sequence === 0 && !this.stopReason) {
        // The caller answers 503 instead of streaming; a client already watching the run by its
        // id still sees it end with a done, like any other. A turn that waited in a queue has
        // streamed already: for it the refusal is an error like any other.
        this.refusal = err;
        result = { status: "error", error: err.message };
      }
      // codex exits non-zero after reporting turn.failed, so a known result outlives the throw.
      if (!result && !this.stopReason) result = { status: "error", error: messageOf(err) };
    }
    clearTimeout(this.stallTimer);
    this.admit(this.refusal);
    if (this.stopReason && result?.status !== "completed") {
      result = { status: this.stopReason, error: this.stopError ?? `turn ${this.stopReason}` };
    }
    result ??= { status: "error", error: "codex ended without finishing the turn" };
    clearTimeout(this.graceTimer);
    this.finishedAt = new Date();
    this.outcome = {
      status: result.status,
      thread_id: this.threadId,
      request_id: this.id,
      usage,
      error: result.error,
      final_response: finalResponse(lastMessage, this.turn.options?.outputSchema !== undefined),
      replaces: this.turn.replaces ?? null,
      diff,
    };
    const elapsedMs = this.options.now() - startedAt;
    this.options.observer?.finished(result.status, elapsedMs / 1000, { tenant: this.turn.tenant?.name, usage });
    this.log.info(this.refusal ? "turn refused" : "turn finished", {
      request_id: this.id,
      tenant: tenantLogName(this.turn.tenant),
      thread_id: this.threadId ?? undefined,
      status: result.status,
      duration_ms: Math.round(elapsedMs),
      error: result.error ?? undefined,
    });
    const done = { id: ++sequence, event: "done", data: JSON.stringify(this.outcome) };
    this.options.tap?.(this, done);
    await this.events.end(done);
    // A refused run never existed for clients (they got a 503): nothing to announce.
    if (!this.refusal) this.options.notifier?.runDone(this, this.outcome, this.finishedAt);
  }
}
