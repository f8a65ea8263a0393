import { Hono } from "hono";
import type { Config } from "./config";
import { ApiError, errorResponse, toApiError } from "./errors";
import type { Logger } from "./log";
import { checkOrigin, isLoopbackHost, requireBearerToken, requireLoopbackHost } from "./middleware/access";
import { healthRoute } from "./routes/health";
import { messagesRoute } from "./routes/messages";
import { runsRoute } from "./routes/runs";
import type { RunRegistry } from "./runs/registry";
import { requestIdSchema } from "./schemas";

export type AppDeps = {
  config: Pick<
    Config,
    "host" | "maxBodyBytes" | "heartbeatMs" | "defaultWorkDir" | "workspaceRoot" | "authToken" | "allowedOrigins"
  >;
  runs: RunRegistry;
  log: Logger;
  now?: () => number;
  newId?: () => string;
};

/** The Bun server, when there is one: SSE responses switch off its idle timeout per request. */
export type AppEnv = {
  Bindings: { timeout?(request: Request, seconds: number): void } | undefined;
  Variables: { requestId: string };
};

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const now = deps.now ?? (() => performance.now());
  const newId = deps.newId ?? (() => crypto.randomUUID());
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    const startedAt = now();
    const incoming = c.req.header("x-request-id");
    c.set("requestId", incoming && requestIdSchema.safeParse(incoming).success ? incoming : newId());
    await next();
    const requestId = c.get("requestId");
    c.res.headers.set("x-request-id", requestId);
    deps.log.info(`${c.req.method} ${c.req.path}`, {
      status: c.res.status,
      duration_ms: Math.round((now() - startedAt) * 10) / 10,
      request_id: requestId,
    });
  });

  if (isLoopbackHost(deps.config.host)) app.use(requireLoopbackHost());
  app.use(checkOrigin(deps.config.allowedOrigins));
  app.route("/health", healthRoute());
  // Registered after /health, which stays open to load balancers and probes.
  if (deps.config.authToken !== undefined) app.use(requireBearerToken(deps.config.authToken));
  app.route("/messages", messagesRoute(deps));
  app.route("/runs", runsRoute(deps));

  app.notFound((c) => errorResponse(c, new ApiError(404, "not_found", `There is no ${c.req.path} here.`)));
  app.onError((err, c) => {
    const apiError = toApiError(err);
    if (apiError.code === "internal_error") {
      deps.log.error("request failed", { request_id: c.get("requestId"), error: err.stack ?? String(err) });
    }
    return errorResponse(c, apiError);
  });
  return app;
}
