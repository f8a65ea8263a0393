import type { Subprocess } from "bun";
import pkg from "../../../package.json" with { type: "json" };
import { EngineBusyError, EngineError } from "../types";
import type { Method, ParamsOf, ResultOf, ServerNotification, ServerRequest } from "./protocol";

/** app-server's answer when its queue of incoming requests is full. */
const OVERLOADED_CODE = -32001;
/** Enough of a dying codex's stderr to say why it died. */
const STDERR_TAIL_BYTES = 4096;
/** codex colours its log lines even into a pipe; a `done` error is plain text. */
const ANSI_SEQUENCE = /\x1b\[[0-9;]*[A-Za-z]/g;
/**
 * How long an exit's reason may wait for the rest of stderr: the exit is often seen before the
 * last lines are read, and a process the child left behind can hold the pipe open for ever.
 */
const STDERR_DRAIN_MS = 1_000;

export type ConnectionHandlers = {
  notification(message: ServerNotification): void;
  request(message: ServerRequest): void;
  /** The process is gone; every request still waiting has been rejected with `error`. */
  exit(error: EngineError): void;
  /** A line that was not a message, or whose handling threw: it is skipped, the reading goes on. */
  skipped(line: string, reason: string): void;
};

/** app-server answered a request with an error. */
export class RpcError extends EngineError {
  constructor(method: string, readonly code: number, message: string) {
    super(`codex app-server refused ${method}: ${message} (${code})`);
  }
}

type Pending = { method: string; resolve(result: unknown): void; reject(error: Error): void; timer: ReturnType<typeof setTimeout> };

/**
 * One `codex app-server` process, spoken to in JSON lines over stdio: JSON-RPC 2.0 without the
 * `jsonrpc` field. Requests are answered in any order; notifications and requests from the
 * server go to `handlers`. Whatever the child does, nothing here throws into the caller's stack
 * except the rejection of the request it made.
 */
export class AppServerConnection {
  private readonly child: Subprocess<"pipe", "pipe", "pipe">;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderrTail = "";
  private closedWith: EngineError | undefined;
  readonly exited: Promise<void>;

  constructor(
    argv: string[],
    env: Record<string, string>,
    private readonly handlers: ConnectionHandlers,
    private readonly requestTimeoutMs: number,
  ) {
    this.child = Bun.spawn(argv, { env, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    void this.readLines();
    const stderrRead = this.readStderr();
    this.exited = this.child.exited.then(async (code) => {
      // Stopped or killed here: the reason is already known.
      if (this.closedWith) return;
      const signal = this.child.signalCode;
      // Killed, it had no last word: what it wrote before is start-up noise, not the reason.
      if (signal) return this.close(new EngineError(`codex app-server exited with signal ${signal}`));
      await settledWithin(stderrRead, STDERR_DRAIN_MS);
      // codex prints its reason on an `Error:` line, then a backtrace that says nothing useful.
      const lines = this.stderrTail.replace(ANSI_SEQUENCE, "").trim().split("\n");
      const tail = lines.find((line) => line.startsWith("Error: ")) ?? lines.slice(-3).join(" | ");
      this.close(new EngineError(`codex app-server exited with code ${code}${tail ? `: ${tail}` : ""}`));
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.closedWith === undefined;
  }

  /** The handshake: `initialize`, then the `initialized` notification. */
  async initialize(): Promise<void> {
    await this.request("initialize", {
      clientInfo: { name: "codex_http_server", title: "codex-http-server", version: pkg.version },
      capabilities: null,
    });
    this.send({ method: "initialized" });
  }

  request<M extends Method>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new EngineError(`codex app-server did not answer ${method} within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this.pending.set(id, { method, resolve: resolve as (result: unknown) => void, reject, timer });
      this.send({ id, method, params });
    });
  }

  /** Answers a request the server sent. */
  respond(id: number | string, result: unknown): void {
    this.send({ id, result });
  }

  respondError(id: number | string, code: number, message: string): void {
    this.send({ id, error: { code, message } });
  }

  /** Closes stdin (app-server exits on EOF), then SIGTERM, then SIGKILL, each after `graceMs`. */
  async stop(graceMs = 2_000): Promise<void> {
    this.close(new EngineError("codex app-server was stopped"));
    try {
      this.child.stdin.end();
    } catch {}
    const gone = () => Promise.race([this.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
    if (await gone()) return;
    this.child.kill("SIGTERM");
    if (await gone()) return;
    this.child.kill("SIGKILL");
    await this.exited;
  }

  /** SIGKILL, now: for an exit that cannot wait for `stop`. */
  kill(): void {
    this.close(new EngineError("codex app-server was killed"));
    this.child.kill("SIGKILL");
  }

  private send(message: Record<string, unknown>): void {
    if (this.closedWith) return;
    try {
      this.child.stdin.write(`${JSON.stringify(message)}\n`);
      void Promise.resolve(this.child.stdin.flush()).catch(() => {});
    } catch {
      // A child that died has closed its stdin; its exit rejects whatever waits on it.
    }
  }

  private close(error: EngineError): void {
    if (this.closedWith) return;
    this.closedWith = error;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
      this.pending.delete(id);
    }
    this.handlers.exit(error);
  }

  private async readLines(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of this.child.stdout) {
        buffer += decoder.decode(chunk, { stream: true });
        let newline = buffer.indexOf("\n");
        while (newline >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.trim()) this.dispatchOrSkip(line);
          newline = buffer.indexOf("\n");
        }
      }
    } catch {
      // The pipe broke with the process; its exit is reported by `exited`.
    }
  }

  private async readStderr(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.child.stderr) {
        this.stderrTail = (this.stderrTail + decoder.decode(chunk, { stream: true })).slice(-STDERR_TAIL_BYTES);
      }
    } catch {}
  }

  /** One bad line must not end the reading: every turn on this process waits on it. */
  private dispatchOrSkip(line: string): void {
    try {
      this.dispatch(line);
    } catch (err) {
      this.handlers.skipped(line, err instanceof Error ? err.message : String(err));
    }
  }

  private dispatch(line: string): void {
    const message: { id?: number | string; method?: string; result?: unknown; error?: { code: number; message: string } } = JSON.parse(line);
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      this.handlers.skipped(line, "not a JSON-RPC message");
      return;
    }
    if (message.method !== undefined && message.id !== undefined) {
      this.handlers.request(message as ServerRequest);
    } else if (message.method !== undefined) {
      this.handlers.notification(message as ServerNotification);
    } else if (typeof message.id === "number") {
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.error) pending.reject(rpcError(pending.method, message.error));
      else pending.resolve(message.result);
    }
  }
}

/** Resolves when `promise` settles or `ms` pass, whichever comes first, leaving no timer behind. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function rpcError(method: string, error: { code: number; message: string }): EngineError {
  if (error.code === OVERLOADED_CODE) return new EngineBusyError(`codex app-server is overloaded: ${error.message}`, 5);
  return new RpcError(method, error.code, error.message);
}
