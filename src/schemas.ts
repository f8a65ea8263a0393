import { statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { z } from "zod";
import { CODEX_LOGIN_STATES } from "./engine/codex-auth";
import { APPROVAL_DECISIONS, REASONING_EFFORTS, REQUEST_SANDBOXES, STORED_TURN_STATUSES } from "./engine/types";

export const MESSAGE_TYPES = ["user_message", "user_confirm", "user_cancel", "user_edit"] as const;
/** What a user_message does when its thread runs another turn: refuse (409), wait for it, or cancel it. */
export const ON_BUSY = ["reject", "enqueue", "interrupt"] as const;

/** Request ids travel into headers and log lines, so they are kept to a safe alphabet. */
export const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const requestIdSchema = z.string().regex(REQUEST_ID, "must be 1 to 128 letters, digits, '.', '_', ':' or '-'");

/** A request's id: the client's X-Request-ID when it is well formed, else a new one. */
export function requestIdOf(given: string | null | undefined, newId: () => string): string {
  return given != null && REQUEST_ID.test(given) ? given : newId();
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isHttpUrl(text: string): boolean {
  try {
    return ["http:", "https:"].includes(new URL(text).protocol);
  } catch {
    return false;
  }
}

export const workDirSchema = z.string().superRefine((path, ctx) => {
  if (!isAbsolute(path)) ctx.addIssue({ code: "custom", message: "must be an absolute path" });
  else if (!isDirectory(path)) ctx.addIssue({ code: "custom", message: "must be an existing directory" });
});

/**
 * A codex thread id is a UUID (version 7 with codex 0.163), in its canonical 8-4-4-4-12 form.
 * codex parses it as a UUID, taking either case, and names its files and events in lowercase; the
 * server lowercases it too, so that the rollout lookup and the one-turn-per-thread rule are exact
 * matches. The other spellings codex would take (braces, no dashes) are refused, not rewritten.
 */
function codexIdSchema(kind: "thread" | "turn") {
  return z
    .string()
    .regex(
      /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
      `must be a codex ${kind} id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e`,
    )
    .toLowerCase();
}
export const threadIdSchema = codexIdSchema("thread");

export const userMessageSchema = z.strictObject({
  type: z.literal("user_message"),
  message: z.string().refine((text) => text.trim().length > 0, "must not be empty"),
  work_dir: workDirSchema.optional(),
  id: requestIdSchema.optional(),
  thread_id: threadIdSchema.optional(),
  model: z.string().regex(/^[A-Za-z0-9._:/-]{1,100}$/, "must be a model name").optional(),
  reasoning_effort: z.enum(REASONING_EFFORTS).optional(),
  sandbox: z.enum(REQUEST_SANDBOXES).optional(),
  output_schema: z.record(z.string(), z.unknown()).optional(),
  images: z.array(z.string().refine(isAbsolute, "must be an absolute path")).max(16).optional(),
  on_busy: z.enum(ON_BUSY).optional(),
  webhook_url: z
    .string()
    .max(2048, "must be at most 2048 characters")
    .refine(isHttpUrl, "must be an http:// or https:// URL")
    .optional()
    .describe("Also send this turn's webhooks (run.done, approval.requested) here; its host must be one that --webhook-allowed-hosts lists (else 422)."),
});

export const userCancelSchema = z.strictObject({
  type: z.literal("user_cancel"),
  id: requestIdSchema,
  message: z.string().optional(),
});

export const userEditSchema = z.strictObject({
  type: z.literal("user_edit"),
  id: requestIdSchema,
  message: z.string().refine((text) => text.trim().length > 0, "must not be empty"),
});

/** Answers an `approval.requested` event of the running turn `id`. */
const userConfirmSchema = z.strictObject({
  type: z.literal("user_confirm"),
  id: requestIdSchema,
  approval_id: z.string().min(1).max(128),
  decision: z.enum(APPROVAL_DECISIONS),
});

export const messageRequestSchema = z.discriminatedUnion("type", [
  userMessageSchema,
  userCancelSchema,
  userEditSchema,
  userConfirmSchema,
]);
export type MessageRequest = z.infer<typeof messageRequestSchema>;

/** `work_dir: must be an absolute path; message: ...`: every problem, each named by its field. */
export function describeIssues(error: z.core.$ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length > 0 ? issue.path.join(".") : "body";
      if (issue.code === "unrecognized_keys") return `${issue.keys.join(", ")}: unknown field`;
      if (issue.code === "invalid_type" && issue.path.length === 0) return "body: must be a JSON object";
      if (issue.code === "invalid_union" && field === "type") return `type: must be one of ${MESSAGE_TYPES.join(", ")}`;
      return `${field}: ${issue.message}`;
    })
    .join("; ");
}

/** A page size in a query string: decimal digits, 1 to 100. */
function pageSizeSchema(defaultSize: number) {
  const message = "must be a whole number from 1 to 100";
  return z
    .string()
    .regex(/^[0-9]{1,3}$/, message)
    .transform(Number)
    .refine((size) => size >= 1 && size <= 100, message)
    .default(defaultSize);
}

const cursorSchema = z.string().min(1, "must not be empty").max(4096, "must be a next_cursor this server gave");

export const threadListQuerySchema = z.strictObject({
  limit: pageSizeSchema(20),
  cursor: cursorSchema.optional(),
  cwd: z.string().refine(isAbsolute, "must be an absolute path").optional(),
  q: z.string().min(1, "must not be empty").max(200, "must be at most 200 characters").optional(),
});

export const threadReadQuerySchema = z.strictObject({
  turns_limit: pageSizeSchema(20),
  cursor: cursorSchema.optional(),
});

export const threadParamsSchema = z.object({ id: threadIdSchema });

export const threadRenameSchema = z.strictObject({
  name: z.string().trim().min(1, "must not be empty").max(200, "must be at most 200 characters"),
});

export const threadForkSchema = z.strictObject({ turn_id: codexIdSchema("turn").optional() });

/**
 * What the server answers, in zod like what it accepts: the OpenAPI document and the runs'
 * TypeScript types both come from here.
 */
export const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
export const healthSchema = z.object({ status: z.literal("ok") });
export const readySchema = z.object({
  status: z
    .enum(["ready", "not_ready", "shutting_down"])
    .describe("ready (200): turns can start and codex can authenticate, or the server cannot tell; not_ready (503): codex cannot authenticate, or (replicas) the shared store is down; shutting_down (503)."),
  codex_login: z
    .enum(CODEX_LOGIN_STATES)
    .describe("ok: an API key variable is set, codex is logged in, or the model provider's env_key is set; missing: none of them; unknown: `codex login status` did not answer (or failed)."),
  store: z
    .enum(["up", "down"])
    .optional()
    .describe("Only with --redis-url: whether the shared store (Redis) answers; while it is down new turns get 503 store_unavailable."),
});
export type ReadyBody = z.infer<typeof readySchema>;
export const cancelledSchema = z.object({ cancelled: z.string() });
export const confirmedSchema = z.object({ approval_id: z.string(), decision: z.enum(APPROVAL_DECISIONS) });
export const usageSchema = z.object({
  input_tokens: z.number(),
  cached_input_tokens: z.number(),
  cache_write_input_tokens: z.number(),
  output_tokens: z.number(),
  reasoning_output_tokens: z.number(),
});
export const runStatusSchema = z.enum(["completed", "failed", "cancelled", "timeout", "error"]);
export const runSummarySchema = z.object({
  id: z.string(),
  thread_id: z.string().nullable(),
  status: z.union([z.literal("queued"), z.literal("running"), runStatusSchema]),
  queue_position: z.number().int().min(1).nullable().describe("While the turn waits for its thread (status queued): its place, 1 being next."),
  started_at: z.string(),
  finished_at: z.string().nullable(),
  usage: usageSchema.nullable(),
  replaces: z.string().nullable(),
});
/** A waiting turn's place in its thread's queue (1: next): its first event, and again each time it moves up. */
export const runQueuedEventSchema = z.object({ type: z.literal("run.queued"), position: z.number().int().min(1) });
export const runListSchema = z.object({ runs: z.array(runSummarySchema) });
export const doneSchema = z.object({
  status: runStatusSchema,
  thread_id: z.string().nullable(),
  request_id: z.string(),
  usage: usageSchema.nullable(),
  error: z.string().nullable(),
  final_response: z.unknown().describe("The last agent message: its text, or the parsed JSON when output_schema was given."),
  replaces: z.string().nullable(),
  diff: z
    .string()
    .nullable()
    .describe("The unified diff of the files the turn changed, as its last turn.diff event gave it; null where the engine reports none (exec) or the turn changed no file."),
});

/**
 * The webhooks' bodies, as the Standard Webhooks spec shapes them: `type`, `timestamp` (when the
 * event happened) and `data`.
 */
const webhookTimestamp = z.string().describe("When the event happened (ISO 8601); each attempt's own time is in the webhook-timestamp header.");
export const runDoneWebhookSchema = z.object({
  type: z.literal("run.done"),
  timestamp: webhookTimestamp,
  data: z
    .object({ id: z.string().describe("The run's id (request_id)."), ...doneSchema.shape, started_at: z.string(), finished_at: z.string() })
    .describe("The run's done event, with its id and when it started and finished."),
});
export const approvalRequestedWebhookSchema = z.object({
  type: z.literal("approval.requested"),
  timestamp: webhookTimestamp,
  data: z
    .object({
      run_id: z.string(),
      thread_id: z.string().nullable(),
      approval_id: z.string().describe("What user_confirm names."),
      kind: z.enum(["command_execution", "file_change"]),
      command: z.string().optional(),
      cwd: z.string().optional(),
      reason: z.string().optional(),
      changes: z.array(z.object({ path: z.string(), kind: z.enum(["add", "delete", "update"]) })).optional(),
    })
    .describe("What codex asks, as the approval.requested event of the stream says it, and whose run it is."),
});
export type RunDoneWebhook = z.infer<typeof runDoneWebhookSchema>;
export type ApprovalRequestedWebhook = z.infer<typeof approvalRequestedWebhookSchema>;

export type Usage = z.infer<typeof usageSchema>;
export type RunStatus = z.infer<typeof runStatusSchema>;
export type RunSummary = z.infer<typeof runSummarySchema>;
export type DoneData = z.infer<typeof doneSchema>;
export type RunQueuedEvent = z.infer<typeof runQueuedEventSchema>;

export const threadSummarySchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  preview: z.string().describe("The start of the thread's first user message."),
  cwd: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
  status: z.enum(["running", "idle"]).describe("running while a turn of this server runs on the thread."),
});
export const threadListSchema = z.object({
  threads: z.array(threadSummarySchema).describe("Newest first."),
  next_cursor: z.string().nullable().describe("Pass as cursor, with the same query, for the next page; null on the last page."),
});
export const threadTurnSchema = z.object({
  id: z.string(),
  input: z.string().describe("The text of the user's message."),
  items: z
    .array(z.record(z.string(), z.unknown()))
    .describe("The turn's items, shaped as the item of an item.completed event (@openai/codex-sdk ThreadItem): agent_message, command_execution, file_change, reasoning, mcp_tool_call, web_search, ..."),
  status: z.enum(STORED_TURN_STATUSES),
  usage: usageSchema.nullable().describe("The thread's token totals at the end of the turn, as its turn.completed reported them."),
});
export const threadDetailSchema = threadSummarySchema.extend({
  turns: z.array(threadTurnSchema).describe("Oldest first: the newest turns_limit turns, or those before cursor."),
  next_cursor: z.string().nullable().describe("Pass as cursor for the turns before these; null once the first turn is here."),
});
export const threadArchivedSchema = z.object({ id: z.string(), archived: z.literal(true) });
export const threadForkedSchema = z.object({ thread_id: z.string() });

export type ThreadSummary = z.infer<typeof threadSummarySchema>;
export type ThreadList = z.infer<typeof threadListSchema>;
export type ThreadTurn = z.infer<typeof threadTurnSchema>;
export type ThreadDetail = z.infer<typeof threadDetailSchema>;
