import { z } from "zod";
import pkg from "../package.json" with { type: "json" };
import {
  cancelledSchema,
  confirmedSchema,
  doneSchema,
  errorSchema,
  approvalRequestedWebhookSchema,
  healthSchema,
  messageRequestSchema,
  readySchema,
  runDoneWebhookSchema,
  runListSchema,
  runQueuedEventSchema,
  runSummarySchema,
  threadArchivedSchema,
  threadDetailSchema,
  threadForkedSchema,
  threadForkSchema,
  threadListSchema,
  threadRenameSchema,
  threadSummarySchema,
} from "./schemas";

const json = (schema: z.ZodType) => z.toJSONSchema(schema, { unrepresentable: "any" });
const content = (ref: string) => ({ "application/json": { schema: { $ref: `#/components/schemas/${ref}` } } });
const errors = (description: string) => ({ description, content: content("Error") });
/** With replicas, a run that is not here is looked up in Redis. */
const storeDown = errors("with replicas: store_unavailable (Retry-After), when the run is not on this replica and Redis does not answer");
const eventStream = {
  description:
    "Server-Sent Events: one frame per codex thread event (`event:` its type, `data:` the @openai/codex-sdk ThreadEvent as JSON, `id:` its number in the run), `: keep-alive` comments every 15 s, and always a last `event: done` whose data is a Done. " +
    "A turn sent with on_busy enqueue that waits for its thread first streams `run.queued` frames (a RunQueued: its position, 1 being next), a new one each time it moves up. " +
    "With --engine app-server, `turn.diff` frames ({type, diff}) carry the unified diff of the files the turn changed so far, each time it changes. " +
    "With --approval-policy on-request or untrusted (app-server engine), `approval.requested` frames ({type, approval_id, kind, command?, cwd?, reason?, changes?}) wait for a user_confirm, and an `approval.resolved` frame ({type, approval_id, decision, by: client|timeout|turn_ended}) follows each.",
  content: { "text/event-stream": { schema: { type: "string" } } },
};
const runId = { name: "id", in: "path", required: true, schema: { type: "string" } };

/** A webhook this server POSTs, signed as Standard Webhooks has it; any 2xx is success, 5xx and 429 are retried. */
function webhook(summary: string, payload: string) {
  const header = (name: string, description: string) => ({ name, in: "header", required: true, schema: { type: "string" }, description });
  return {
    post: {
      summary,
      parameters: [
        header("webhook-id", "The message's id (msg_...), the same on every retry: deduplicate on it."),
        header("webhook-timestamp", "This attempt's time, in seconds since the epoch."),
        header("webhook-signature", "v1,<base64 HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>`>, keyed with the bytes that the base64 after `whsec_` in the secret encodes."),
      ],
      requestBody: { required: true, content: content(payload) },
      responses: {
        "2XX": { description: "Delivered." },
        "429": { description: "Retried later." },
        "5XX": { description: "Retried later: 6 attempts over about ten minutes." },
        default: { description: "Any other answer (a redirect included, which is never followed): given up." },
      },
    },
  };
}

/** The document for the routes that every server has. */
const openApiBase = {
  openapi: "3.1.0",
  info: {
    title: "codex-http-server",
    version: pkg.version,
    description: "Runs OpenAI Codex turns and streams their events as Server-Sent Events.",
  },
  security: [{ bearer: [] }, {}],
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "Required when the server runs with --auth-token." } },
    schemas: {
      MessageRequest: json(messageRequestSchema),
      Error: json(errorSchema),
      Health: json(healthSchema),
      Ready: json(readySchema),
      Cancelled: json(cancelledSchema),
      Confirmed: json(confirmedSchema),
      RunSummary: json(runSummarySchema),
      RunList: json(runListSchema),
      Done: json(doneSchema),
      RunQueued: json(runQueuedEventSchema),
      RunDoneWebhook: json(runDoneWebhookSchema),
      ApprovalRequestedWebhook: json(approvalRequestedWebhookSchema),
    },
  },
  webhooks: {
    "run.done": webhook(
      "A run has ended, however it ended (not a turn the engine refused with 503). Sent to --webhook-url and to the request's webhook_url.",
      "RunDoneWebhook",
    ),
    "approval.requested": webhook(
      "codex asks before it acts (app-server engine with an approval policy); answer with a user_confirm naming data.run_id and data.approval_id.",
      "ApprovalRequestedWebhook",
    ),
  },
  paths: {
    "/health": {
      get: { summary: "Health check", security: [], responses: { 200: { description: "The server is up", content: content("Health") } } },
    },
    "/ready": {
      get: {
        summary: "Readiness: whether turns can start and codex can authenticate (an API key variable, `codex login`, or the model provider's env_key)",
        security: [],
        responses: {
          200: { description: "Ready: codex can authenticate, or the server cannot tell (codex_login unknown)", content: content("Ready") },
          503: { description: "Not ready: codex cannot authenticate or the shared store (replicas) is down (not_ready), or the server is shutting down (shutting_down)", content: content("Ready") },
        },
      },
    },
    "/messages": {
      post: {
        summary:
          "Run a turn (user_message, user_edit) as an SSE stream, cancel one (user_cancel), or answer its approval (user_confirm). " +
          "A user_message for a thread that runs another turn is refused (on_busy reject, the default: 409 thread_busy), waits for it (enqueue), or cancels it (interrupt).",
        requestBody: { required: true, content: content("MessageRequest") },
        responses: {
          200: {
            ...eventStream,
            content: {
              ...eventStream.content,
              "application/json": { schema: { oneOf: [{ $ref: "#/components/schemas/Cancelled" }, { $ref: "#/components/schemas/Confirmed" }] } },
            },
          },
          400: errors("invalid_json"),
          401: errors("unauthorized"),
          403: errors("forbidden_host, forbidden_origin, work_dir_forbidden (outside --workspace-root or the tenant's workspace_root), image_forbidden, sandbox_forbidden"),
          404: errors("run_not_found, thread_not_found, approval_not_found; another tenant's run or thread answers as an unknown one"),
          409: errors("id_in_use, thread_busy, no_approvals"),
          413: errors("payload_too_large"),
          415: errors("unsupported_media_type"),
          422: errors("invalid_request: the message names each field; also a webhook_url whose host --webhook-allowed-hosts does not list"),
          429: errors("too_many_turns (this replica's limit, or with replicas --cluster-max-turns), queue_full, tenant_turn_limit (Retry-After)"),
          503: errors("shutting_down, engine_busy; with replicas store_unavailable, thread_unavailable, replica_unavailable (Retry-After)"),
        },
      },
    },
    "/runs": {
      get: {
        summary: "Running and recently finished runs, a tenant's own (every one for an admin); with replicas, of every replica (while Redis is down, this one's)",
        responses: { 200: { description: "The runs", content: content("RunList") } },
      },
    },
    "/runs/{id}": {
      get: {
        summary: "One run",
        parameters: [runId],
        responses: { 200: { description: "The run", content: content("RunSummary") }, 404: errors("run_not_found"), 503: storeDown },
      },
      delete: {
        summary: "Cancel a running or waiting run",
        parameters: [runId],
        responses: {
          200: { description: "Cancelling", content: content("Cancelled") },
          404: errors("run_not_found"),
          503: errors("with replicas: store_unavailable, replica_unavailable (Retry-After)"),
        },
      },
    },
    "/runs/{id}/events": {
      get: {
        summary: "Replay a run's events, then follow it live until done",
        parameters: [
          runId,
          {
            name: "Last-Event-ID",
            in: "header",
            required: false,
            schema: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
            description: "Send only the events after this id: decimal digits. An id past the end reads on from the end; the stream still ends with `done`.",
          },
        ],
        responses: { 200: eventStream, 400: errors("invalid_last_event_id"), 404: errors("run_not_found"), 503: storeDown },
      },
    },
    "/openapi.json": {
      get: { summary: "This document", security: [], responses: { 200: { description: "OpenAPI 3.1", content: { "application/json": {} } } } },
    },
  },
} as const;

/** The routes that only some servers have. */
export type OptionalRoutes = { webConsole: boolean; metrics: boolean; threads: boolean };

const threadId = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string", pattern: "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$" },
  description: "A codex thread id (a UUID, either case).",
};
const pageSize = (name: string, description: string) => ({
  name,
  in: "query",
  required: false,
  schema: { type: "integer", minimum: 1, maximum: 100, default: 20 },
  description,
});
const cursor = (description: string) => ({ name: "cursor", in: "query", required: false, schema: { type: "string" }, description });
const threadBusy = errors("thread_busy: a turn runs on the thread, or it is being archived");
const engineBusy = errors("engine_busy (Retry-After): codex's app-server is restarting");

const threadPaths = {
  "/threads": {
    get: {
      summary: "codex's stored threads, started by either engine, newest first",
      parameters: [
        pageSize("limit", "Threads per page."),
        cursor("The next_cursor of the previous page, with the same query."),
        { name: "cwd", in: "query", required: false, schema: { type: "string" }, description: "Only threads started in exactly this directory (absolute)." },
        { name: "q", in: "query", required: false, schema: { type: "string", maxLength: 200 }, description: "Only threads whose name or preview contains this text." },
      ],
      responses: {
        200: { description: "A page of threads", content: content("ThreadList") },
        400: errors("invalid_cursor"),
        401: errors("unauthorized"),
        422: errors("invalid_request: the message names each parameter"),
        503: engineBusy,
      },
    },
  },
  "/threads/{id}": {
    get: {
      summary: "One thread with its turns: the user's input and the items of each turn, shaped as its item.completed events",
      parameters: [
        threadId,
        pageSize("turns_limit", "Turns per page: the newest ones, or those before cursor."),
        cursor("The next_cursor of the previous page: the turns before it."),
      ],
      responses: {
        200: { description: "The thread", content: content("ThreadDetail") },
        400: errors("invalid_cursor"),
        404: errors("thread_not_found (archived threads too)"),
        409: threadBusy,
        422: errors("invalid_request"),
        503: engineBusy,
      },
    },
    patch: {
      summary: "Rename a thread",
      parameters: [threadId],
      requestBody: { required: true, content: content("ThreadRename") },
      responses: {
        200: { description: "The renamed thread", content: content("ThreadSummary") },
        400: errors("invalid_json"),
        404: errors("thread_not_found"),
        413: errors("payload_too_large"),
        415: errors("unsupported_media_type"),
        422: errors("invalid_request"),
        503: engineBusy,
      },
    },
    delete: {
      summary: "Archive a thread: it is no longer listed, read or continued",
      parameters: [threadId],
      responses: {
        200: { description: "Archived", content: content("ThreadArchived") },
        404: errors("thread_not_found"),
        409: threadBusy,
        422: errors("invalid_request"),
        503: engineBusy,
      },
    },
  },
  "/threads/{id}/fork": {
    post: {
      summary: "A new thread with this thread's history, up to and including turn_id when given; the thread itself is unchanged",
      parameters: [threadId],
      requestBody: { required: false, content: content("ThreadFork") },
      responses: {
        201: { description: "The new thread", content: content("ThreadForked") },
        400: errors("invalid_json"),
        404: errors("thread_not_found, turn_not_found"),
        409: threadBusy,
        413: errors("payload_too_large"),
        415: errors("unsupported_media_type"),
        422: errors("invalid_request"),
        503: engineBusy,
      },
    },
  },
};

const threadSchemas = {
  ThreadSummary: json(threadSummarySchema),
  ThreadList: json(threadListSchema),
  ThreadDetail: json(threadDetailSchema),
  ThreadRename: json(threadRenameSchema),
  ThreadFork: json(threadForkSchema),
  ThreadArchived: json(threadArchivedSchema),
  ThreadForked: json(threadForkedSchema),
};

const consolePage = {
  "/": {
    get: {
      summary: "The web console: a page that talks to this API (its scripts and styles are under /console/)",
      security: [],
      responses: {
        200: { description: "The page", content: { "text/html": { schema: { type: "string" } } } },
        304: { description: "Not modified: If-None-Match named the page's ETag" },
      },
    },
  },
};

const metricsPath = {
  "/metrics": {
    get: {
      summary: "Prometheus metrics: turns, their durations and outcomes, SSE frames, HTTP requests, codex processes",
      responses: {
        200: { description: "Prometheus text exposition format", content: { "text/plain; version=0.0.4": { schema: { type: "string" } } } },
        401: errors("unauthorized"),
      },
    },
  },
};

/**
 * OpenAPI 3.1 for every route this server has, from the zod schemas: `/` only with the web
 * console on, `/threads` only where the engine reaches codex's threads, `/metrics` only where
 * there are metrics. Built once per app.
 */
export function openApiDocument(has: OptionalRoutes) {
  const { paths, components, ...rest } = openApiBase;
  return {
    ...rest,
    components: { ...components, schemas: { ...components.schemas, ...(has.threads && threadSchemas) } },
    paths: { ...(has.webConsole && consolePage), ...paths, ...(has.threads && threadPaths), ...(has.metrics && metricsPath) },
  };
}
