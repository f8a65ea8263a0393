import type { Logger } from "../../log";
import { assertExecutable } from "../codex-binary";
import { rolloutExists } from "../codex-home";
import { codexOverrides, turnSandbox, untrustedProject, withPathDirs } from "../codex-launch";
import { readUserCodexConfig, type Table } from "../lean-profile";
import { endMarkedProcesses, endMarkedProcessesNow, threadMarker } from "../turn-processes";
import {
  type ApprovalDecision,
  type ApprovalPolicy,
  type ApprovalRequestedEvent,
  type ApprovalResolvedEvent,
  type CodexLaunchOptions,
  type Engine,
  EngineBusyError,
  EngineError,
  type EngineEvent,
  type TurnRequest,
} from "../types";
import { AppServerConnection } from "./connection";
import { TurnEventMapper } from "./event-mapper";
import type { AskForApproval, SandboxMode, SandboxPolicy, ServerNotification, ServerRequest, UserInput } from "./protocol";
import { TurnQueue } from "./turn-queue";

export type AppServerEngineOptions = CodexLaunchOptions & {
  approvalPolicy: ApprovalPolicy;
  /** An approval not answered by then is denied. */
  approvalTimeoutMs: number;
  /** How long app-server gets to answer a request (start, resume, turn). */
  requestTimeoutMs: number;
  /** How many app-server processes share the turns. */
  processes: number;
  log: Logger;
  /** Delay before restarting a process that died, doubled on each death in a row, up to `max`. */
  restartDelayMs?: { first: number; max: number };
};

/** How long an interrupted turn gets to report its end before it is ended without it. */
const INTERRUPT_GRACE_MS = 3_000;
/** Threads kept loaded per process once their turns are over; older idle ones are unloaded. */
const MAX_IDLE_THREADS = 64;
const METHOD_NOT_FOUND = -32601;

type LoadedThread = {
  /** Warnings codex gave before the thread's turn started (some come before the turn is ours), shown when it starts. */
  warnings: string[];
  /** The sandbox the thread runs with now; undefined until it is opened. */
  sandbox: SandboxMode | undefined;
};

type PendingApproval = {
  id: string;
  rpcId: number | string;
  connection: AppServerConnection;
  turn: TurnSession;
  timer: ReturnType<typeof setTimeout>;
};

class TurnSession {
  readonly queue = new TurnQueue<EngineEvent>();
  readonly mapper = new TurnEventMapper((event) => this.queue.push(event));
  turnId: string | undefined;
  /**
   * What codex sent before turn/start's answer (it comes in one burst), handled once the turn's id
   * tells whether it is this turn's or the late end of an interrupted one, and in the order sent.
   */
  readonly early: Array<() => void> = [];
  started = false;
  readonly approvals = new Set<PendingApproval>();
  /** File changes by item id: an approval request names only the item. */
  readonly changes = new Map<string, NonNullable<ApprovalRequestedEvent["changes"]>>();
}

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

/** One app-server process of the pool: started on demand, restarted after a delay when it dies. */
class PooledProcess {
  connection: AppServerConnection | undefined;
  /** The process from its spawn until it exits, initialized or not: what `kill` must reach. */
  private spawned: AppServerConnection | undefined;
  private starting: Promise<AppServerConnection> | undefined;
  /** Why the last process stopped, told to the turns refused while it waits to restart. */
  private lastError: EngineError | undefined;
  private deathsInARow = 0;
  private notBefore = 0;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  closed = false;
  readonly threads = new Map<string, LoadedThread>();
  readonly turns = new Map<string, TurnSession>();

  constructor(
    readonly index: number,
    private readonly engine: AppServerEngine,
  ) {}

  get alive(): boolean {
    return this.connection?.alive === true;
  }

  /** Dead and waiting out its restart delay: a turn sent here now would be refused as busy. */
  get restartPending(): boolean {
    return !this.alive && !this.starting && this.notBefore > Date.now();
  }

  ensure(): Promise<AppServerConnection> {
    if (this.connection?.alive) return Promise.resolve(this.connection);
    if (this.closed) return Promise.reject(new EngineError("the app-server engine is stopped"));
    const wait = this.notBefore - Date.now();
    if (wait > 0 && !this.starting) {
      // Rather than hold the request (and its response headers) for up to the longest restart delay.
      const seconds = Math.ceil(wait / 1000);
      const why = this.lastError ? ` (${this.lastError.message})` : "";
      return Promise.reject(new EngineBusyError(`codex app-server is restarting after it stopped${why}; try again in ${seconds} s`, seconds));
    }
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  thread(threadId: string): LoadedThread {
    let thread = this.threads.get(threadId);
    if (!thread) {
      thread = { warnings: [], sandbox: undefined };
      this.threads.set(threadId, thread);
    }
    return thread;
  }

  /** A turn has ended: this thread moves to the back of the unload order, the oldest idle ones go. */
  release(threadId: string, connection: AppServerConnection): void {
    const thread = this.threads.get(threadId);
    if (thread) {
      this.threads.delete(threadId);
      this.threads.set(threadId, thread);
    }
    let excess = this.threads.size - MAX_IDLE_THREADS;
    for (const id of this.threads.keys()) {
      if (excess <= 0) break;
      if (this.turns.has(id)) continue;
      this.threads.delete(id);
      this.engine.forget(id, this);
      void connection.request("thread/unsubscribe", { threadId: id }).catch(() => {});
      excess--;
    }
  }

  succeeded(): void {
    this.deathsInARow = 0;
  }

  private start(): Promise<AppServerConnection> {
    return this.engine.oneAtATime(() => this.spawn());
  }

  private async spawn(): Promise<AppServerConnection> {
    if (this.closed) throw new EngineError("the app-server engine is stopped");
    // Checked at each start, not each turn: a running app-server does not need its file any more.
    assertExecutable(this.engine.options.codex.path);
    const connection = new AppServerConnection(this.engine.argv(), this.engine.env, {
      notification: (message) => this.engine.onNotification(this, message),
      request: (message) => this.engine.onRequest(this, connection, message),
      exit: (error) => this.onExit(connection, error),
      skipped: (line, reason) =>
        this.engine.options.log.warn("codex app-server sent a line that was skipped", { process: this.index, reason, line: line.slice(0, 200) }),
    }, this.engine.options.requestTimeoutMs);
    this.spawned = connection;
    try {
      await connection.initialize();
    } catch (err) {
      const error = err instanceof EngineError ? err : new EngineError(String(err));
      void connection.stop(0);
      // Stopping it reports "was stopped"; why the handshake failed says more.
      this.lastError = error;
      throw error;
    }
    this.connection = connection;
    this.engine.options.log.debug("codex app-server started", { process: this.index, pid: connection.pid });
    return connection;
  }

  private onExit(connection: AppServerConnection, error: EngineError): void {
    if (this.connection === connection) this.connection = undefined;
    if (this.spawned === connection) this.spawned = undefined;
    this.lastError = error;
    for (const threadId of this.threads.keys()) this.engine.forget(threadId, this);
    this.threads.clear();
    for (const turn of this.turns.values()) this.engine.endTurn(turn, error);
    this.turns.clear();
    if (this.closed) return;
    const { first, max } = this.engine.options.restartDelayMs ?? { first: 250, max: 30_000 };
    const delay = Math.min(max, first * 2 ** this.deathsInARow);
    this.deathsInARow++;
    this.notBefore = Date.now() + delay;
    this.engine.options.log.warn("codex app-server died; restarting it", { process: this.index, error: error.message, delay_ms: delay });
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.ensure().catch((err: Error) => this.engine.options.log.warn("codex app-server did not restart", { process: this.index, error: err.message }));
    }, delay);
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    await this.starting?.catch(() => {});
    await this.connection?.stop();
  }

  kill(): void {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.spawned?.kill();
  }
}

/**
 * Turns on a small pool of long-lived `codex app-server` processes instead of one `codex exec`
 * per turn. A thread stays on the process that loaded it; one that no process holds (from an
 * earlier run of the server, or a process that died) is loaded with `thread/resume`.
 */
export class AppServerEngine implements Engine {
  private readonly pool: PooledProcess[];
  /** Which process holds each loaded thread. */
  private readonly owners = new Map<string, PooledProcess>();
  private readonly approvals = new Map<string, PendingApproval>();
  private starts: Promise<unknown> = Promise.resolve();
  readonly env: Record<string, string>;
  readonly refusesWhenBusy = true;

  constructor(readonly options: AppServerEngineOptions) {
    const { env, codex } = options;
    this.env = withPathDirs(env, codex.pathDirs);
    this.pool = Array.from({ length: Math.max(1, options.processes) }, (_, index) => new PooledProcess(index, this));
  }

  /** Read when a process starts, so that a config.toml edited since is respected by the next one. */
  argv(): string[] {
    return [this.options.codex.path, "app-server", ...codexOverrides(this.options).flatMap((override) => ["-c", override])];
  }

  activeProcesses(): number {
    return this.pool.filter((member) => member.alive).length;
  }

  threadExists(threadId: string): boolean {
    return this.owners.has(threadId) || rolloutExists(this.options.env, threadId);
  }

  /** Starts the processes now rather than at the first turn; failures are left for that turn to report. */
  warm(): void {
    for (const member of this.pool) member.ensure().catch(() => {});
  }

  async close(): Promise<void> {
    await Promise.all(this.pool.map((member) => member.stop()));
  }

  killNow(): void {
    for (const member of this.pool) {
      // A command that ignores the hang-up its terminal gets when app-server dies would outlive it.
      for (const threadId of member.turns.keys()) endMarkedProcessesNow([threadMarker(threadId)]);
      member.kill();
    }
  }

  /**
   * Runs process starts one after another: two app-servers that start together on a CODEX_HOME
   * without a state database yet race to create it, and one exits with "failed to initialize
   * sqlite state runtime".
   */
  oneAtATime<T>(start: () => Promise<T>): Promise<T> {
    const started = this.starts.then(start, start);
    this.starts = started.catch(() => {});
    return started;
  }

  forget(threadId: string, member: PooledProcess): void {
    if (this.owners.get(threadId) === member) this.owners.delete(threadId);
  }

  private pick(threadId: string | undefined): PooledProcess {
    const owner = threadId === undefined ? undefined : this.owners.get(threadId);
    if (owner?.alive) return owner;
    // One waiting to restart would refuse the turn as busy: any other, however loaded, is better.
    const available = this.pool.filter((member) => !member.restartPending);
    const candidates = available.length > 0 ? available : this.pool;
    const load = (member: PooledProcess) => member.turns.size + (member.alive ? 0 : 0.5);
    return candidates.reduce((best, member) => (load(member) < load(best) ? member : best));
  }

  private approvalPolicy(): AskForApproval {
    return this.options.bypassApprovalsAndSandbox ? "never" : this.options.approvalPolicy;
  }

  async *runTurn(request: TurnRequest): AsyncGenerator<EngineEvent> {
    const { signal } = request;
    const member = this.pick(request.threadId);
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
      this.owners.set(threadId, member);
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
      signal.removeEventListener("abort", interrupt);
      clearTimeout(interruptTimer);
      if (threadId !== undefined && member.turns.get(threadId) === turn) {
        member.turns.delete(threadId);
        if (connection?.alive) member.release(threadId, connection);
      }
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
