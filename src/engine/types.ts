import type { ThreadEvent, ThreadItem, Usage } from "@openai/codex-sdk";
import type { CodexBinary } from "./codex-binary";

/** The SDK's event shapes are the contract of every engine, whatever runs codex underneath. */
export type { ThreadEvent, ThreadItem, Usage };

export const REASONING_EFFORTS = ["minimal", "low", "medium", "high", "xhigh"] as const;
/** Sandboxes a request may ask for: never looser than the server's own. */
export const REQUEST_SANDBOXES = ["read-only", "workspace-write"] as const;

/** What a request may choose for its own turn, already checked against the server's policy. */
export type TurnOptions = {
  model?: string;
  reasoningEffort?: (typeof REASONING_EFFORTS)[number];
  sandbox?: (typeof REQUEST_SANDBOXES)[number];
  /** JSON Schema the final agent message must satisfy. */
  outputSchema?: Record<string, unknown>;
  /** Absolute paths of local images sent with the message. */
  images?: string[];
};

export type TurnRequest = {
  input: string;
  workDir: string;
  /** Continue this thread instead of starting a new one. */
  threadId?: string;
  options?: TurnOptions;
  /** Aborting it ends the turn and whatever process runs it. */
  signal: AbortSignal;
};

/** How either engine starts codex. */
export type CodexLaunchOptions = {
  codex: CodexBinary;
  env: Record<string, string>;
  bypassApprovalsAndSandbox: boolean;
  /** Apply the lean profile (keys the user's config.toml sets are left alone). */
  lean: boolean;
  /** `KEY=VALUE` overrides from `--codex-config`, applied last, so they win. */
  configOverrides: string[];
};

/** Approval policies that app-server in codex 0.163 accepts (it refuses `on-failure`). */
export const APPROVAL_POLICIES = ["never", "on-request", "untrusted"] as const;
export type ApprovalPolicy = (typeof APPROVAL_POLICIES)[number];

export const APPROVAL_DECISIONS = ["approve", "deny"] as const;
export type ApprovalDecision = (typeof APPROVAL_DECISIONS)[number];

/** codex asks whether it may run a command or apply a change; a client answers with user_confirm. */
export type ApprovalRequestedEvent = {
  type: "approval.requested";
  approval_id: string;
  kind: "command_execution" | "file_change";
  command?: string;
  cwd?: string;
  reason?: string;
  changes?: Array<{ path: string; kind: "add" | "delete" | "update" }>;
};

/** How an approval ended: answered by the client, denied after the approval timeout, or dropped with its turn. */
export type ApprovalResolvedEvent = {
  type: "approval.resolved";
  approval_id: string;
  decision: ApprovalDecision;
  by: "client" | "timeout" | "turn_ended";
};

/**
 * The unified diff of every file the turn has changed so far, where the engine reports one
 * (app-server's `turn/diff/updated`); each one replaces the one before.
 */
export type TurnDiffEvent = { type: "turn.diff"; diff: string };

/** What a turn streams: the SDK's thread events, plus its diff and approvals where the engine has them. */
export type EngineEvent = ThreadEvent | TurnDiffEvent | ApprovalRequestedEvent | ApprovalResolvedEvent;

/** A thread as codex keeps it in CODEX_HOME, without its turns. */
export type StoredThread = {
  id: string;
  /** The name given with `rename`, if any. */
  name: string | null;
  /** The start of the thread's first user message. */
  preview: string;
  /** The directory its first turn ran in. */
  cwd: string;
  /** Unix time, in seconds. */
  createdAt: number;
  updatedAt: number;
};

export const STORED_TURN_STATUSES = ["completed", "failed", "interrupted", "in_progress"] as const;

/** One turn of a stored thread: what the user said, and the items of the turn as its `item.completed` events carried them. */
export type StoredTurn = {
  id: string;
  /** The text of the user's message. */
  input: string;
  items: ThreadItem[];
  /** As the process answering saw it: one that does not run the turn sees a turn still going as interrupted. */
  status: (typeof STORED_TURN_STATUSES)[number];
  /** The thread's token totals at the end of the turn, as its `turn.completed` reported them; null when codex recorded none. */
  usage: Usage | null;
  /** Unix time, in seconds; null when codex did not record it. */
  startedAt: number | null;
};

export type ThreadListQuery = {
  limit: number;
  /** A `nextCursor` of an earlier page with the same query. */
  cursor?: string;
  /** Only threads whose directory is exactly this one. */
  cwd?: string;
  /** Only threads whose name or preview contains this text. */
  search?: string;
};

export type ThreadReadQuery = {
  /** How many turns, newest first, from `cursor` on. */
  turnsLimit: number;
  cursor?: string;
};

export type StoredThreadPage = { threads: StoredThread[]; nextCursor: string | null };

export type ThreadHistory = StoredThread & {
  /** Oldest first: the page of the `turnsLimit` turns before `cursor` (the newest ones without it). */
  turns: StoredTurn[];
  /** Continues with the turns before this page; null at the thread's first turn. */
  nextCursor: string | null;
  /** codex has the thread but none of its turns (a rollout copied in): `rebuildHistory` recovers them. */
  historyMissing: boolean;
};

/**
 * The threads codex keeps in CODEX_HOME, whichever engine ran them: read, renamed, archived and
 * forked through codex itself. Unknown and archived threads throw ThreadNotFoundError.
 */
export interface ThreadStore {
  list(query: ThreadListQuery): Promise<StoredThreadPage>;
  read(threadId: string, query: ThreadReadQuery): Promise<ThreadHistory>;
  /** Has codex rebuild the turns of a thread from its rollout; this loads the thread, so no turn may run on it meanwhile. */
  rebuildHistory(threadId: string): Promise<void>;
  rename(threadId: string, name: string): Promise<StoredThread>;
  archive(threadId: string): Promise<void>;
  /** A new thread with the history of this one, up to and including `lastTurnId` when given (else TurnNotFoundError); its id. */
  fork(threadId: string, options: { lastTurnId?: string }): Promise<string>;
}

export interface Engine {
  runTurn(request: TurnRequest): AsyncIterable<EngineEvent>;
  /** The threads codex has stored, for engines that can reach them. */
  readonly threads?: ThreadStore;
  /** Whether a thread can be continued; engines that cannot tell leave it out. */
  threadExists?(threadId: string): boolean;
  /** codex processes running now, for /metrics. */
  activeProcesses?(): number;
  /**
   * Answers an approval this engine asked for; false when it is not pending (any more). Engines
   * that never ask for approvals leave it out.
   */
  resolveApproval?(approvalId: string, decision: ApprovalDecision): boolean;
  /**
   * The engine may refuse a turn as too busy (EngineBusyError, before its first event), so callers
   * wait for the first event before they answer; engines that never refuse leave it out.
   */
  readonly refusesWhenBusy?: boolean;
  /** Called once the server listens: prepares what turns need (app-server processes, exec's lsb_release shim). */
  warm?(): void;
  /** No turn will start any more (shutdown): start no long-lived process ahead of one. */
  drain?(): void;
  /** Stops the engine's long-lived processes, if it has any. */
  close?(): Promise<void>;
  /** Kills the engine's long-lived processes at once (SIGKILL), for an exit that cannot wait for `close`. */
  killNow?(): void;
}

/** codex could not run the turn at all (missing binary, crash, no output): not the model's fault. */
export class EngineError extends Error {}

/** codex is too busy to take the turn now; the client should try again after `retryAfterSeconds`. */
export class EngineBusyError extends EngineError {
  constructor(message: string, readonly retryAfterSeconds: number) {
    super(message);
  }
}

/** No thread with this id is stored (or it is archived). */
export class ThreadNotFoundError extends Error {
  constructor(readonly threadId: string) {
    super(`No codex thread ${threadId} is stored here.`);
  }
}

/** The thread has no turn with this id. */
export class TurnNotFoundError extends Error {
  constructor(readonly threadId: string, readonly turnId: string) {
    super(`Thread ${threadId} has no turn ${turnId}.`);
  }
}

/** A cursor that this store did not give out for this query. */
export class InvalidCursorError extends Error {
  constructor() {
    super("cursor: must be a next_cursor given for the same query.");
  }
}
