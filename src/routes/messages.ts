import { zValidator } from "@hono/zod-validator";
import type { Context, Hono } from "hono";
import type { AppDeps, AppEnv } from "../app-types";
import { EngineBusyError } from "../engine/types";
import { ApiError, toApiError } from "../errors";
import { bareHost, hostIsListed } from "../middleware/access";
import {
  QueueFullError,
  RunIdInUseError,
  RunIdTakenError,
  RunLimitError,
  RunsClosedError,
  TenantLimitError,
  ThreadBusyError,
  ThreadHeldError,
} from "../runs/registry";
import { editedTurn, type RunView } from "../runs/cluster";
import type { Run, TurnInput } from "../runs/run";
import { describeIssues, messageRequestSchema, type userMessageSchema } from "../schemas";
import type { z } from "zod";
import type { Tenant } from "../tenants/tenant";
import type { ThreadAccess } from "../tenants/thread-access";
import { resolveImage, resolveWorkDir } from "../work-dir";
import { cancelRun, notRunning } from "./cancel";
import { clusterRefusal } from "./cluster-refusals";
import { limitBody, requireJsonBody } from "./json-body";
import { methodNotAllowed } from "./method-not-allowed";
import { streamRunEvents } from "./stream-run-events";

type UserMessage = z.infer<typeof userMessageSchema>;

const NO_APPROVALS =
  "This server runs codex with approval policy never, so there is never an approval to answer. " +
  "To answer approvals, start it with --engine app-server --dangerously-bypass-approvals-and-sandbox false --approval-policy on-request.";

/** The registry's refusals, as the client sees them. */
function startRefused(err: unknown): never {
  if (err instanceof RunIdInUseError || err instanceof RunIdTakenError) throw new ApiError(409, "id_in_use", err.message);
  if (err instanceof ThreadBusyError || err instanceof ThreadHeldError) throw new ApiError(409, "thread_busy", err.message);
  if (err instanceof RunLimitError) throw new ApiError(429, "too_many_turns", err.message, { "retry-after": "5" });
  if (err instanceof TenantLimitError) throw new ApiError(429, "tenant_turn_limit", err.message, { "retry-after": "5" });
  if (err instanceof QueueFullError) throw new ApiError(429, "queue_full", err.message, { "retry-after": "5" });
  if (err instanceof RunsClosedError) throw new ApiError(503, "shutting_down", err.message, { "retry-after": "5" });
  throw err;
}

/** A replica's answer to another for a command it refused: the error a client of its own would get. */
export function describeRefusal(err: unknown): ApiError {
  if (err instanceof EngineBusyError) return new ApiError(503, "engine_busy", err.message, { "retry-after": String(err.retryAfterSeconds) });
  try {
    startRefused(err);
  } catch (refused) {
    return clusterRefusal(refused) ?? toApiError(refused);
  }
}

export function messageRoutes(app: Hono<AppEnv>, deps: AppDeps, threadAccess: ThreadAccess): void {
  const { config, runs, cluster } = deps;

  /** The request's own options, within the server's policy and its tenant's (a workspace root of its own). */
  async function turnFor(body: UserMessage, tenant: Tenant): Promise<TurnInput> {
    const root = tenant.workspaceRoot;
    const workspace = root === undefined ? config : { defaultWorkDir: root, workspaceRoot: root };
    const workDir = resolveWorkDir(body.work_dir, workspace);
    if (workDir === undefined) {
      const whose = root === undefined ? "the server's" : "your";
      throw new ApiError(403, "work_dir_forbidden", `work_dir: must be inside ${whose} workspace root.`);
    }
    if (body.sandbox === "workspace-write" && !config.bypassApprovalsAndSandbox) {
      throw new ApiError(
        403,
        "sandbox_forbidden",
        "sandbox: workspace-write would loosen the server's sandbox; this server allows only read-only.",
      );
    }
    const images = body.images?.map((path) => {
      const real = resolveImage(path, workspace.workspaceRoot ?? workDir);
      if (real === undefined) {
        throw new ApiError(403, "image_forbidden", `images: ${path} must be an existing file inside the work_dir or workspace root.`);
      }
      return real;
    });
    if (body.webhook_url !== undefined) checkWebhookUrl(body.webhook_url);
    // Another tenant's thread is answered as an unknown one: the same 404, the same words. With
    // replicas the thread may live on another one: the cluster looks for it (ClusterRuns.start).
    const unknownHere = !cluster && body.thread_id !== undefined && runs.threadExists(body.thread_id) === false;
    if (body.thread_id !== undefined && (unknownHere || !(await threadAccess.canSee(body.thread_id, tenant)))) {
      throw new ApiError(404, "thread_not_found", `No codex thread ${body.thread_id} is stored here.`);
    }
    return {
      input: body.message,
      workDir,
      ...(body.thread_id && { threadId: body.thread_id }),
      options: {
        ...(body.model && { model: body.model }),
        ...(body.reasoning_effort && { reasoningEffort: body.reasoning_effort }),
        ...(body.sandbox && { sandbox: body.sandbox }),
        ...(body.output_schema && { outputSchema: body.output_schema }),
        ...(images && { images }),
      },
      ...(body.webhook_url && { webhookUrl: body.webhook_url }),
      tenant,
    };
  }

  /** A request's webhook_url may name only a host the operator listed: the server would POST wherever it says (SSRF). */
  function checkWebhookUrl(text: string): void {
    if (config.webhookAllowedHosts.length === 0) {
      throw new ApiError(422, "invalid_request", "webhook_url: this server takes none; its operator can allow hosts with --webhook-allowed-hosts.");
    }
    const host = bareHost(new URL(text).hostname).replace(/\.$/, "");
    if (!hostIsListed(host, config.webhookAllowedHosts)) {
      throw new ApiError(422, "invalid_request", `webhook_url: ${host} is not a host that --webhook-allowed-hosts lists.`);
    }
  }

  /**
   * Before a turn streams, the server may wait: for an edited turn's predecessor to end, for the
   * engine to take the turn (an app-server starting or resuming a thread). Bun's idle timer would
   * close the quiet connection meanwhile, and that would cancel the turn.
   */
  const keepOpen = (c: Context<AppEnv>) => c.env?.timeout?.(c.req.raw, 0);

  /** Starts the turn and streams it once the engine has taken it; a busy engine's refusal is answered 503 instead. */
  const startAndStream = async (c: Context<AppEnv>, start: () => RunView | Promise<RunView>) => {
    keepOpen(c);
    let run: RunView;
    try {
      run = await start();
    } catch (err) {
      startRefused(err);
    }
    const clientGone = () => run.stop("cancelled");
    c.req.raw.signal.addEventListener("abort", clientGone, { once: true });
    const refusal = await run.admitted;
    c.req.raw.signal.removeEventListener("abort", clientGone);
    if (refusal) throw new ApiError(503, "engine_busy", refusal.message, { "retry-after": String(refusal.retryAfterSeconds) });
    c.set("requestId", run.id);
    c.header("x-request-id", run.id);
    return streamRunEvents(c, run, 0, deps);
  };

  app
    .post(
      "/messages",
      limitBody(config.maxBodyBytes),
      requireJsonBody,
      zValidator("json", messageRequestSchema, (result) => {
        if (result.success) return;
        // Where codex never asks, any user_confirm gets the explanation, not a list of its missing fields.
        if (config.approvalPolicy === "never" && (result.data as { type?: unknown } | null)?.type === "user_confirm") {
          throw new ApiError(409, "no_approvals", NO_APPROVALS);
        }
        throw new ApiError(422, "invalid_request", describeIssues(result.error));
      }),
      async (c) => {
        const body = c.req.valid("json");
        const tenant = c.get("tenant");
        switch (body.type) {
          case "user_cancel":
            return c.json(await cancelRun(deps, body.id, tenant));
          case "user_confirm": {
            if (config.approvalPolicy === "never") throw new ApiError(409, "no_approvals", NO_APPROVALS);
            if (cluster) {
              await cluster.approve(body.id, body.approval_id, body.decision, tenant);
              return c.json({ approval_id: body.approval_id, decision: body.decision });
            }
            const run = runs.get(body.id, tenant);
            if (!run?.running) throw notRunning(body.id);
            if (!run.resolveApproval(body.approval_id, body.decision)) {
              throw new ApiError(404, "approval_not_found", `Turn ${body.id} has no pending approval ${body.approval_id}.`);
            }
            return c.json({ approval_id: body.approval_id, decision: body.decision });
          }
          case "user_edit": {
            const old = runs.get(body.id, tenant);
            if (!old?.running && cluster) {
              return startAndStream(c, async () => {
                const run = await cluster.editElsewhere(body.id, c.get("requestId"), body.message, tenant);
                if (!run) throw notRunning(body.id);
                return run;
              });
            }
            if (!old?.running) throw notRunning(body.id);
            const edit = (ended: Run) => editedTurn(ended, body.message);
            return startAndStream(c, () => (cluster ? cluster.replaceHere(old, c.get("requestId"), edit) : runs.replace(old, c.get("requestId"), edit)));
          }
          case "user_message": {
            const id = body.id ?? c.get("requestId");
            const turn = await turnFor(body, tenant);
            if (cluster) return startAndStream(c, () => cluster.start(id, turn, body.on_busy ?? "reject"));
            if (body.on_busy === "interrupt") return startAndStream(c, () => runs.interrupt(id, turn));
            return startAndStream(c, () => runs.start(id, turn, { enqueue: body.on_busy === "enqueue" }));
          }
        }
      },
    )
    .all("/messages", methodNotAllowed("POST"));
}
