/**
 * A typed client for codex-http-server: `sendMessage` runs a turn and yields its events as they
 * come; when the connection drops before `done`, it reattaches with `Last-Event-ID` (the server
 * must keep the turn going: `--reattach-grace`), so that every event arrives exactly once.
 */
import type { ThreadEvent } from "@openai/codex-sdk";
import { followRun, StreamLost } from "./console/sse";
import type { z } from "zod";
import type { ApprovalDecision, ApprovalRequestedEvent, ApprovalResolvedEvent, TurnDiffEvent } from "./engine/types";
import type {
  ApprovalRequestedWebhook,
  DoneData,
  RunDoneWebhook,
  RunQueuedEvent,
  RunSummary,
  ThreadDetail,
  ThreadList,
  ThreadSummary,
  userMessageSchema,
} from "./schemas";

export type { ApprovalDecision, ApprovalRequestedEvent, ApprovalResolvedEvent, RunQueuedEvent, ThreadEvent, TurnDiffEvent };
export type Done = DoneData;
export type { RunSummary, ThreadDetail, ThreadList, ThreadSummary };
/** The bodies of the webhooks the server sends, for a receiver in TypeScript (verify the signature first). */
export type { ApprovalRequestedWebhook, RunDoneWebhook };

/** GET /threads: `cursor` is a `next_cursor` of a page with the same other parameters. */
export type ThreadListParams = { limit?: number; cursor?: string; cwd?: string; q?: string };
/** GET /threads/{id}: the newest `turns_limit` turns, or those before `cursor`. */
export type ThreadReadParams = { turns_limit?: number; cursor?: string };

/** The defined values of `params` as a query string, with its `?`; empty without any. */
function queryString(params: Record<string, string | number | undefined>): string {
  const defined = Object.entries(params).flatMap(([name, value]): Array<[string, string]> => (value === undefined ? [] : [[name, String(value)]]));
  return defined.length === 0 ? "" : `?${new URLSearchParams(defined)}`;
}
export type UserMessage = Omit<z.input<typeof userMessageSchema>, "type">;

/**
 * One frame of a run: its place in its thread's queue (`on_busy: "enqueue"`), a codex thread
 * event, the turn's diff or an approval (app-server engine), or the final `done`.
 */
export type ClientEvent = { id: number } & (
  | { type: "run.queued"; data: RunQueuedEvent }
  | { type: ThreadEvent["type"]; data: ThreadEvent }
  | { type: "turn.diff"; data: TurnDiffEvent }
  | { type: "approval.requested"; data: ApprovalRequestedEvent }
  | { type: "approval.resolved"; data: ApprovalResolvedEvent }
  | { type: "done"; data: Done }
);

export class ServerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type ClientOptions = {
  /** e.g. http://127.0.0.1:8081 */
  baseUrl: string;
  /** The server's --auth-token, if it has one. */
  token?: string;
  fetch?: typeof fetch;
};

export type SendOptions = {
  signal?: AbortSignal;
  /** How many broken connections in a row to reattach after (default 5); 0 never reattaches. */
  reconnects?: number;
};

export class CodexServerClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    this.fetch = options.fetch ?? fetch;
  }

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.options.token) headers.set("authorization", `Bearer ${this.options.token}`);
    const res = await this.fetch(`${this.options.baseUrl}${path}`, { ...init, headers });
    if (!res.ok) {
      const body = (await res.json().catch(() => undefined)) as { error?: { code: string; message: string } } | undefined;
      throw new ServerError(res.status, body?.error?.code ?? "http_error", body?.error?.message ?? res.statusText);
    }
    return res;
  }

  async health(): Promise<{ status: "ok" }> {
    return (await this.request("/health")).json() as Promise<{ status: "ok" }>;
  }

  async run(id: string): Promise<RunSummary> {
    return (await this.request(`/runs/${encodeURIComponent(id)}`)).json() as Promise<RunSummary>;
  }

  async cancel(id: string): Promise<{ cancelled: string }> {
    return (await this.request(`/runs/${encodeURIComponent(id)}`, { method: "DELETE" })).json() as Promise<{ cancelled: string }>;
  }

  /** A page of codex's stored threads, newest first. */
  async threads(params: ThreadListParams = {}): Promise<ThreadList> {
    return (await this.request(`/threads${queryString(params)}`)).json() as Promise<ThreadList>;
  }

  /** A thread with a page of its turns. */
  async thread(id: string, params: ThreadReadParams = {}): Promise<ThreadDetail> {
    return (await this.request(`/threads/${encodeURIComponent(id)}${queryString(params)}`)).json() as Promise<ThreadDetail>;
  }

  async renameThread(id: string, name: string): Promise<ThreadSummary> {
    const res = await this.request(`/threads/${encodeURIComponent(id)}`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name }),
    });
    return res.json() as Promise<ThreadSummary>;
  }

  /** Archives a thread: it is no longer listed, read or continued. */
  async archiveThread(id: string): Promise<{ id: string; archived: true }> {
    return (await this.request(`/threads/${encodeURIComponent(id)}`, { method: "DELETE" })).json() as Promise<{ id: string; archived: true }>;
  }

  /** A new thread with this one's history, up to and including `turn_id` when given. */
  async forkThread(id: string, { turn_id }: { turn_id?: string } = {}): Promise<{ thread_id: string }> {
    const res = await this.request(`/threads/${encodeURIComponent(id)}/fork`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(turn_id === undefined ? {} : { turn_id }),
    });
    return res.json() as Promise<{ thread_id: string }>;
  }

  /** Answers an `approval.requested` event of the running turn `id`. */
  async confirm(id: string, approvalId: string, decision: ApprovalDecision): Promise<{ approval_id: string; decision: ApprovalDecision }> {
    const res = await this.request("/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "user_confirm", id, approval_id: approvalId, decision }),
    });
    return res.json() as Promise<{ approval_id: string; decision: ApprovalDecision }>;
  }

  /** Runs a turn; yields each event once, `done` last, reattaching after a dropped connection. */
  async *sendMessage(message: UserMessage, { signal, reconnects = 5 }: SendOptions = {}): AsyncGenerator<ClientEvent> {
    const id = message.id ?? crypto.randomUUID();
    const res = await this.request("/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "user_message", ...message, id }),
      ...(signal && { signal }),
    });
    const reopen = (lastId: number) =>
      this.request(`/runs/${encodeURIComponent(id)}/events`, {
        headers: { "last-event-id": String(lastId) },
        ...(signal && { signal }),
      });
    try {
      for await (const frame of followRun(res, { reopen, reconnects, stopped: () => signal?.aborted === true })) {
        yield { id: Number(frame.id ?? 0), type: frame.event, data: JSON.parse(frame.data) } as ClientEvent;
      }
    } catch (err) {
      if (err instanceof StreamLost) throw new ServerError(0, "stream_ended", `the stream of turn ${id} ended before done`);
      throw err;
    }
  }
}
