import type { Logger } from "../../log";
import { rolloutExists } from "../codex-home";
import { turnSandbox, untrustedProject } from "../codex-launch";
import { readUserCodexConfig, type Table } from "../lean-profile";
import { endMarkedProcesses, endMarkedProcessesNow, threadMarker } from "../turn-processes";
import {
  type ApprovalDecision,
  type ApprovalPolicy,
  type ApprovalRequestedEvent,
  type ApprovalResolvedEvent,
  type CodexLaunchOptions,
  type Engine,
  EngineError,
  type EngineEvent,
  type ThreadStore,
  type TurnRequest,
} from "../types";
import { AppServerConnection } from "./connection";
import type { AskForApproval, SandboxMode, SandboxPolicy, ServerNotification, ServerRequest, UserInput } from "./protocol";
import { AppServerPool, appServerLaunch, type PoolLaunch, type PooledProcess, type PoolTurns, type RecycleLimits } from "./pool";
import { AppServerThreadStore, LOADED_SANDBOX } from "./thread-store";
import { type PendingApproval, TurnSession } from "./turn-session";

export type AppServerEngineOptions = CodexLaunchOptions & {
  approvalPolicy: ApprovalPolicy;
  /** An approval not answered by then is denied. */
  approvalTimeoutMs: number;
  /** How long app-server gets to answer a request (start, resume, turn). */
  requestTimeoutMs: number;
  /** How many app-server processes share the turns. */
  processes: number;
  log: Logger;
  restartDelayMs?: PoolLaunch["restartDelayMs"];
  /** When a process is replaced by a fresh one (codex's memory grows with every thread it loads). */
  recycle?: RecycleLimits;
};

/** How long an interrupted turn gets to report its end before it is ended without it. */
const INTERRUPT_GRACE_MS = 3_000;
const METHOD_NOT_FOUND = -32601;

/**
 * The policy `turn/start` takes for a sandbox mode, with codex's defaults for the rest; only sent
 * when a loaded thread's turn asks for another sandbox than its last (`sandbox_workspace_write`
 * settings in config.toml do not apply to such a turn).
 */
function sandboxPolicy(mode: SandboxMode): SandboxPolicy {
  if (mode === "danger-full-access") return { type: "dangerFullAccess" };
  if (mode === "read-only") return { type: "readOnly", networkAccess: false };
  return { type: "workspaceWrite", writableRoots: [], networkAccess: false, excludeTmpdirEnvVar: false, excludeSlashTmp: false };
}

/**
 * Turns on a small pool of long-lived `codex app-server` processes instead of one `codex exec`
 * per turn. A thread stays on the process that loaded it; one that no process holds (from an
 * earlier run of the server, or a process that died) is loaded with `thread/resume`.
 */
export class AppServerEngine implements Engine, PoolTurns {
  private readonly pool: AppServerPool;
  private readonly approvals = new Map<string, PendingApproval>();
  readonly refusesWhenBusy = true;
  readonly threads: ThreadStore;

  constructor(readonly options: AppServerEngineOptions) {
    const { log, requestTimeoutMs, restartDelayMs } = options;
    this.pool = new AppServerPool(
      options.processes,
      appServerLaunch(options, { requestTimeoutMs, log, ...(restartDelayMs && { restartDelayMs }) }),
      this,
      options.recycle,
    );
    // A thread's requests go to the process that has it loaded; a thread the store loads stays
    // there, as if a turn had opened it, and its next turn asks for its own sandbox.
    this.threads = new AppServerThreadStore({
      exists: (threadId) => this.threadExists(threadId),
      connection: (threadId) => this.pool.pick(threadId).ensure(),
      loading: async (threadId, load) => {
        const member = this.pool.pick(threadId);
        const { value, loaded } = await load(await member.ensure());
        member.thread(loaded).sandbox = LOADED_SANDBOX;
        this.pool.own(loaded, member);
        return value;
      },
      archived: (threadId) => this.pool.drop(threadId),
      approvalPolicy: this.approvalPolicy(),
    });
  }

  activeProcesses(): number {
    return this.pool.alive();
  }

  threadExists(threadId: string): boolean {
    return this.pool.holds(threadId) || rolloutExists(this.options.env, threadId);
  }

  warm(): void {
    this.pool.warm();
  }

  drain(): void {
    this.pool.drain();
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  killNow(): void {
    for (const member of this.pool.members) {
      // A command that ignores the hang-up its terminal gets when app-server dies would outlive it.
      for (const threadId of member.turns.keys()) endMarkedProcessesNow([threadMarker(threadId)]);
      member.kill();
    }
  }

  private approvalPolicy(): AskForApproval {
    return this.options.bypassApprovalsAndSandbox ? "never" : this.options.approvalPolicy;
  }

  async *runTurn(request: TurnRequest): AsyncGenerator<EngineEvent> {
    const { signal } = request;
    const { member, done } = this.pool.claim(request.threadId);
    const turn = new TurnSession();
    let threadId: string | undefined;
    let connection: AppServerConnection | undefined;
    let interruptTimer: ReturnType<typeof setTimeout> | undefined;
    let ranCommands = false;
    const interrupt = () => {
      if (turn.queue.done) return;
      if (connection && threadId && turn.turnId) {
        void connection.request("turn/interrupt", { threadId, turnId: turn.turnId }).catch(() => {});
        // turn/interrupt leaves the turn's commands running; they end now, not when app-server confirms.
        void endMarkedProcesses([threadMarker(threadId)]);
      }
      interruptTimer = setTimeout(() => this.endTurn(turn), INTERRUPT_GRACE_MS);
    };
    const abortable = <T>(promise: Promise<T>): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        const onAbort = () => reject(new EngineError("the turn was stopped before it started"));
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
      });
    try {
      connection = await abortable(member.ensure());
      // Read per turn, so that a config.toml edited while the server runs is respected.
      const userConfig = readUserCodexConfig(this.options.env);
      const sandbox = turnSandbox(request.options?.sandbox, this.options, userConfig);
      threadId = await abortable(this.openThread(member, connection, request, sandbox, userConfig));
      member.turns.set(threadId, turn);
      this.pool.own(threadId, member);
      yield { type: "thread.started", thread_id: threadId };
      // Not abortable: once sent, the turn runs in app-server whatever happens here, and only its id lets it be interrupted.
      const started = await connection.request("turn/start", this.turnParams(member, threadId, request, sandbox));
      turn.turnId = started.turn.id;
      for (const handle of turn.early.splice(0)) handle();
      if (signal.aborted) interrupt();
      else signal.addEventListener("abort", interrupt, { once: true });
      for await (const event of turn.queue.drain()) {
        if (event.type === "item.started" && event.item.type === "command_execution") ranCommands = true;
        yield event;
      }
      member.succeeded();
    } finally {
      done();
      signal.removeEventListener("abort", interrupt);
      clearTimeout(interruptTimer);
      if (threadId !== undefined && member.turns.get(threadId) === turn) member.turns.delete(threadId);
      this.endTurn(turn);
      // However the turn ended (completed, interrupted, its process died), what it started ends with
      // it, before its thread can take another turn. A turn that ran no command started nothing.
      if (threadId !== undefined && (ranCommands || signal.aborted)) await endMarkedProcesses([threadMarker(threadId)]);
    }
  }

  /** Starts a thread, or makes sure the chosen process holds the one asked for; returns its id. */
  private async openThread(
    member: PooledProcess,
    connection: AppServerConnection,
    request: TurnRequest,
    sandbox: SandboxMode,
    userConfig: Table,
  ): Promise<string> {
    const common = {
      cwd: request.workDir,
      approvalPolicy: this.approvalPolicy(),
      sandbox,
      ...(request.options?.model && { model: request.options.model }),
    };
    if (request.threadId === undefined) {
      // Only a thread's start makes codex record its directory as trusted.
      const untrusted = untrustedProject(request.workDir, sandbox, userConfig);
      const { thread } = await connection.request("thread/start", { ...common, ...(untrusted && { config: { projects: untrusted } }) });
      member.thread(thread.id).sandbox = sandbox;
      return thread.id;
    }
    if (!member.threads.has(request.threadId)) {
      await connection.request("thread/resume", { threadId: request.threadId, ...common });
      member.thread(request.threadId).sandbox = sandbox;
    }
    return request.threadId;
  }

  private turnParams(member: PooledProcess, threadId: string, request: TurnRequest, sandbox: SandboxMode) {
    const options = request.options ?? {};
    const thread = member.thread(threadId);
    let policy: SandboxPolicy | undefined;
    if (sandbox !== thread.sandbox) {
      // A loaded thread keeps the sandbox of its last turn; each turn runs with its own, as with exec.
      policy = sandboxPolicy(sandbox);
      thread.sandbox = sandbox;
    }
    const input: UserInput[] = [
      { type: "text", text: request.input, text_elements: [] },
      ...(options.images ?? []).map((path): UserInput => ({ type: "localImage", path })),
    ];
    return {
      threadId,
      input,
      cwd: request.workDir,
      ...(policy && { sandboxPolicy: policy }),
      ...(options.model && { model: options.model }),
      ...(options.reasoningEffort && { effort: options.reasoningEffort }),
      ...(options.outputSchema && { outputSchema: options.outputSchema as never }),
    };
  }

  /** Ends a turn's stream (with `error` when its process died), settling the approvals it still waits on. */
  endTurn(turn: TurnSession, error?: EngineError): void {
    if (turn.queue.done) return;
    turn.mapper.dispose();
    for (const approval of turn.approvals) this.settle(approval, "deny", "turn_ended");
    if (error) turn.queue.fail(error);
    else turn.queue.end();
  }

  onNotification(member: PooledProcess, message: ServerNotification): void {
    if (message.method === "configWarning") {
      this.options.log.warn("codex app-server", { warning: message.params.summary });
      return;
    }
    // Turn events name their turn in `turn.id`, the others in `turnId`.
    const params = message.params as { threadId?: string; turnId?: string; turn?: { id?: string } };
    const threadId = params.threadId;
    if (threadId === undefined) return;
    const turn = member.turns.get(threadId);
    if (turn && turn.turnId === undefined && !turn.queue.done) {
      turn.early.push(() => this.onNotification(member, message));
      return;
    }
    if (message.method === "serverRequest/resolved") {
      // codex withdrew its request (its turn is ending): nothing is left to answer.
      for (const approval of turn?.approvals ?? []) {
        if (approval.rpcId === message.params.requestId) this.settle(approval, "deny", "turn_ended");
      }
      return;
    }
    if (message.method === "warning" && !turn?.started) {
      member.thread(threadId).warnings.push(message.params.message);
      return;
    }
    if (!turn || turn.queue.done) return;
    const turnId = params.turnId ?? params.turn?.id;
    if (turnId !== undefined && turnId !== turn.turnId) return;
    if (message.method === "turn/started") {
      turn.started = true;
      const thread = member.thread(threadId);
      for (const warning of thread.warnings) turn.queue.push(turn.mapper.warning(warning));
      thread.warnings = [];
    }
    if (message.method === "item/started" && message.params.item.type === "fileChange") {
      turn.changes.set(
        message.params.item.id,
        message.params.item.changes.map((change) => ({ path: change.path, kind: change.kind.type })),
      );
    }
    const { events, ended } = turn.mapper.map(message);
    turn.queue.push(...events);
    if (ended) this.endTurn(turn);
  }

  onRequest(member: PooledProcess, connection: AppServerConnection, message: ServerRequest): void {
    if (message.method !== "item/commandExecution/requestApproval" && message.method !== "item/fileChange/requestApproval") {
      connection.respondError(message.id, METHOD_NOT_FOUND, `codex-http-server does not answer ${message.method}`);
      return;
    }
    const turn = member.turns.get(message.params.threadId);
    if (turn && turn.turnId === undefined && !turn.queue.done) {
      turn.early.push(() => this.onRequest(member, connection, message));
      return;
    }
    if (!turn || turn.queue.done) {
      connection.respond(message.id, { decision: "decline" });
      return;
    }
    const id = crypto.randomUUID();
    const event: ApprovalRequestedEvent =
      message.method === "item/commandExecution/requestApproval"
        ? {
            type: "approval.requested",
            approval_id: id,
            kind: "command_execution",
            ...(message.params.command != null && { command: message.params.command }),
            ...(message.params.cwd != null && { cwd: message.params.cwd }),
            ...(message.params.reason != null && { reason: message.params.reason }),
          }
        : {
            type: "approval.requested",
            approval_id: id,
            kind: "file_change",
            ...(message.params.reason != null && { reason: message.params.reason }),
            changes: turn.changes.get(message.params.itemId) ?? [],
          };
    const approval: PendingApproval = {
      id,
      rpcId: message.id,
      connection,
      turn,
      timer: setTimeout(() => this.settle(approval, "deny", "timeout"), this.options.approvalTimeoutMs),
    };
    turn.approvals.add(approval);
    this.approvals.set(id, approval);
    turn.queue.push(event);
  }

  resolveApproval(approvalId: string, decision: ApprovalDecision): boolean {
    const approval = this.approvals.get(approvalId);
    if (!approval) return false;
    this.settle(approval, decision, "client");
    return true;
  }

  private settle(approval: PendingApproval, decision: ApprovalDecision, by: ApprovalResolvedEvent["by"]): void {
    if (!this.approvals.delete(approval.id)) return;
    clearTimeout(approval.timer);
    approval.turn.approvals.delete(approval);
    if (by !== "turn_ended") approval.connection.respond(approval.rpcId, { decision: decision === "approve" ? "accept" : "decline" });
    approval.turn.queue.push({ type: "approval.resolved", approval_id: approval.id, decision, by });
  }
}

export function createAppServerEngine(options: AppServerEngineOptions): AppServerEngine {
  return new AppServerEngine(options);
}
