import { zValidator } from "@hono/zod-validator";
import type { Hono, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AppDeps, AppEnv } from "../app";
import { ApiError } from "../errors";
import { RunIdInUseError, RunLimitError, RunsClosedError } from "../runs/registry";
import { describeIssues, messageRequestSchema } from "../schemas";
import { streamRun } from "../sse/stream-run";
import { resolveWorkDir } from "../work-dir";
import { cancelRun } from "./cancel";
import { methodNotAllowed } from "./method-not-allowed";

const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * zod-validator would read a non-JSON body as `{}` and throw its own error on malformed JSON, so
 * both are refused here first, in our error shape. The parsed body is cached for the validator.
 */
const requireJsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  const contentType = c.req.header("content-type") ?? "";
  if (!JSON_CONTENT_TYPE.test(contentType)) {
    throw new ApiError(415, "unsupported_media_type", "Send the body as JSON with content-type: application/json.");
  }
  try {
    await c.req.json();
  } catch {
    throw new ApiError(400, "invalid_json", "The request body is not valid JSON.");
  }
  await next();
};

export function messageRoutes(app: Hono<AppEnv>, { config, runs }: AppDeps): void {
  const tooLarge = () => {
    throw new ApiError(413, "payload_too_large", `The request body is larger than ${config.maxBodyBytes} bytes.`);
  };
  app
    .post(
      "/messages",
      bodyLimit({ maxSize: config.maxBodyBytes, onError: tooLarge }),
      requireJsonBody,
      zValidator("json", messageRequestSchema, (result) => {
        if (!result.success) throw new ApiError(422, "invalid_request", describeIssues(result.error));
      }),
      (c) => {
        const body = c.req.valid("json");
        if (body.type === "user_cancel") return c.json(cancelRun(runs, body.id));
        if (body.type !== "user_message") {
          throw new ApiError(501, "not_implemented", `${body.type} is not supported by this server yet; send user_message.`);
        }
        const requestId = body.id ?? c.get("requestId");
        c.set("requestId", requestId);
        const workDir = resolveWorkDir(body.work_dir, config);
        if (workDir === undefined) {
          throw new ApiError(403, "work_dir_forbidden", "work_dir: must be inside the server's workspace root.");
        }
        let started: ReturnType<typeof runs.start>;
        try {
          started = runs.start(requestId, { input: body.message, workDir });
        } catch (err) {
          if (err instanceof RunIdInUseError) throw new ApiError(409, "id_in_use", err.message);
          if (err instanceof RunLimitError) throw new ApiError(429, "too_many_turns", err.message, { "retry-after": "5" });
          if (err instanceof RunsClosedError) throw new ApiError(503, "shutting_down", err.message, { "retry-after": "5" });
          throw err;
        }
        // A turn may be quiet for minutes; heartbeats keep it alive, not Bun's idle timer.
        c.env?.timeout?.(c.req.raw, 0);
        c.header("x-request-id", requestId);
        return streamRun(c, started.events, {
          heartbeatMs: config.heartbeatMs,
          onClientGone: () => started.run.stop("cancelled"),
        });
      },
    )
    .all("/messages", methodNotAllowed("POST"));
}
