/**
 * What replicas share, behind one small interface that the runs layer uses (runs/cluster.ts);
 * routes never see it. store/redis-store.ts is the implementation, on Redis Streams and keys.
 * Without --redis-url there is no store at all: the run registry alone is the embedded default.
 */
import type { ApprovalDecision } from "../engine/types";
import type { RunEvent } from "../runs/event-log";
import type { TurnInput } from "../runs/run";
import type { RunSummary } from "../schemas";

/** The store cannot be reached (or did not answer in time): new turns are refused with 503. */
export class StoreUnavailableError extends Error {
  constructor(detail: string) {
    super(`the shared store (Redis) is unavailable: ${detail}`);
  }
}

/** How a forwarded turn treats a busy thread, as `on_busy` says. */
export type OnBusy = "reject" | "enqueue" | "interrupt";

/** A request for the replica that owns a run or a thread, sent to its control stream. */
export type ControlCommand =
  | { type: "cancel"; run: string }
  | { type: "approve"; run: string; approvalId: string; decision: ApprovalDecision }
  | { type: "edit"; run: string; id: string; message: string; watch: string }
  | { type: "start"; id: string; turn: TurnInput; onBusy: OnBusy; watch: string }
  /** A client on another replica follows (`watch`) or has left (`left`) the run: the reattach grace counts it. */
  | { type: "watch"; run: string; watch: string }
  | { type: "left"; watch: string };

/** The owner's answer: done, or refused with the error the client gets. */
export type ControlReply = { ok: true } | { ok: false; status: number; code: string; message: string; headers?: Record<string, string> };

/** A run as every replica sees it: who runs it, and for which tenant (none without a tokens file). */
export type RunRecord = { owner: string; summary: RunSummary; tenant?: string };

/** Who holds a thread: the replica whose CODEX_HOME has its rollout, fenced by an epoch that grows at each change of hands. */
export type ThreadLease = { owner: string; epoch: number; ownerAlive: boolean };

export type StoreState = "up" | "down";

/** written; ended_elsewhere: a survivor took the run for lost and ended it; replaced: its id runs again (here or elsewhere) since. */
export type AppendResult = "written" | "ended_elsewhere" | "replaced";

export interface ClusterStore {
  readonly replicaId: string;
  readonly state: StoreState;
  /** Resolves once the first connection attempt has ended, either way (the banner shows how). */
  readonly ready: Promise<void>;

  /** A run that starts here: listed and found by id on every replica from now on (a finished run with its id is replaced). */
  publishRun(id: string, summary: RunSummary, tenant: string | undefined): Promise<void>;
  /**
   * Appends a run's events (with its summary when it changed) in one write; `finished` once the
   * last is `done`: the run's keys then expire after the retention. Anything but `written`: the
   * caller stops writing.
   */
  appendEvents(id: string, events: RunEvent[], summary: RunSummary | undefined, finished: boolean): Promise<AppendResult>;

  run(id: string): Promise<RunRecord | undefined>;
  /** Every run kept, in the order they started. */
  runs(): Promise<RunRecord[]>;
  /** Up to `count` events after `afterId`. */
  readEvents(id: string, afterId: number, count: number): Promise<RunEvent[]>;
  lastEvent(id: string): Promise<RunEvent | undefined>;
  /** Waits for events after `afterId` (one blocking read per replica for every stream followed); [] once `signal` aborts. */
  followEvents(id: string, afterId: number, signal: AbortSignal): Promise<RunEvent[]>;

  /** Sends a command to `owner`; with `reply`, waits up to `timeoutMs` for its answer (undefined: none came). */
  send(owner: string, command: ControlCommand, reply: true, timeoutMs: number): Promise<ControlReply | undefined>;
  send(owner: string, command: ControlCommand, reply: false): Promise<void>;
  /** Takes this replica's commands, in order, from now on. */
  onCommand(handler: (command: ControlCommand) => Promise<ControlReply>): void;

  threadLease(threadId: string): Promise<ThreadLease | undefined>;
  /** Takes the thread's lease when it is free or its owner is gone (or keeps it, if it is ours): its epoch; undefined when a live replica holds it. */
  claimThread(threadId: string): Promise<number | undefined>;

  /**
   * One of the cluster's `limit` turn slots for this run, or of `tenant`'s own (false: all taken);
   * it expires unless its owner lives, and goes when the run finishes. A run that `replaces`
   * another (an edit, an interrupt) gets one whatever the limit while that one holds its own,
   * which goes as it ends: the replaced turn's slot counts as its replacement's.
   */
  takeSlot(runId: string, limit: number, tenant?: string, replaces?: string): Promise<boolean>;
  /** Frees every slot the run holds. */
  releaseSlot(runId: string): Promise<void>;

  /** The tenant a thread belongs to (tenants' ThreadOwners, shared by every replica). */
  threadTenant(threadId: string): Promise<string | undefined>;
  /** The thread is `tenant`'s unless it is someone's already. */
  claimThreadTenant(threadId: string, tenant: string): Promise<void>;
  forgetThreadTenant(threadId: string): Promise<void>;

  /** The running runs of replicas whose liveness key has expired. */
  lostRuns(): Promise<{ replica: string; runs: string[] }[]>;
  /** Ends a lost run with this `done` once, however many survivors try; true for the one that did. */
  endLostRun(id: string, done: RunEvent["data"], summary: RunSummary): Promise<boolean>;
  /** The lost replica's runs are all ended: it is forgotten. */
  forgetReplica(replica: string): Promise<void>;

  close(): void;
}
