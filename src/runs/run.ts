import type { Engine, Usage } from "../engine/types";
import type { Logger } from "../log";

export type RunStatus = "completed" | "failed" | "cancelled" | "timeout" | "error";
export type StopReason = "cancelled" | "timeout";

/** One frame of a run's stream: a codex thread event, or the final `done`. */
export type RunEvent = { id: number; event: string; data: string };

export type DoneData = {
  status: RunStatus;
  thread_id: string | null;
  request_id: string;
  usage: Usage | null;
  /** Why the turn did not complete; null when it did. */
  error: string | null;
};

export type TurnInput = { input: string; workDir: string };

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One turn: drives the engine, numbers its events, and always ends with exactly one `done`,
 * whatever happened to codex. It knows neither HTTP nor codex.
 */
export class Run {
  private readonly controller = new AbortController();
  private stopReason: StopReason | undefined;

  constructor(
    readonly id: string,
    private readonly engine: Engine,
    private readonly turn: TurnInput,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** Ends the turn early; the first reason given is the one `done` reports. */
  stop(reason: StopReason): void {
    this.stopReason ??= reason;
    this.controller.abort();
  }

  async *events(): AsyncGenerator<RunEvent> {
    const startedAt = this.now();
    let sequence = 0;
    let threadId: string | null = null;
    let usage: Usage | null = null;
    let outcome: { status: RunStatus; error: string | null } | undefined;
    try {
      // A turn stopped before it began never starts codex.
      const events = this.controller.signal.aborted
        ? []
        : this.engine.runTurn({ ...this.turn, signal: this.controller.signal });
      for await (const event of events) {
        if (event.type === "thread.started") threadId = event.thread_id;
        else if (event.type === "turn.completed") {
          usage = event.usage;
          outcome = { status: "completed", error: null };
        } else if (event.type === "turn.failed") outcome = { status: "failed", error: event.error.message };
        yield { id: ++sequence, event: event.type, data: JSON.stringify(event) };
      }
    } catch (err) {
      // codex exits non-zero after reporting turn.failed, so a known outcome outlives the throw.
      if (!outcome && !this.stopReason) outcome = { status: "error", error: messageOf(err) };
    }
    if (this.stopReason && outcome?.status !== "completed") {
      outcome = { status: this.stopReason, error: `turn ${this.stopReason}` };
    }
    outcome ??= { status: "error", error: "codex ended without finishing the turn" };
    const done: DoneData = { status: outcome.status, thread_id: threadId, request_id: this.id, usage, error: outcome.error };
    this.log.info("turn finished", {
      request_id: this.id,
      thread_id: threadId ?? undefined,
      status: outcome.status,
      duration_ms: Math.round(this.now() - startedAt),
      error: outcome.error ?? undefined,
    });
    yield { id: ++sequence, event: "done", data: JSON.stringify(done) };
  }
}
