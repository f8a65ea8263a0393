import type { Server } from "bun";
import type { AppDeps } from "../app-types";
import { accessPolicy, requestGuard } from "../middleware/access";
import { requestIdOf } from "../schemas";

type Fetch = (request: Request, server: Server<undefined>) => Response | Promise<Response>;

const BODY = JSON.stringify({ status: "ok" });

/**
 * GET (and HEAD) /health for `Bun.serve`'s own router, ahead of Hono: probes and load balancers
 * poll it hard, and through Hono's layers it answered at about half the rate of a bare Bun.serve
 * (bench/health.ts). It does what the app's middleware does for every request (the request id, the
 * browser checks, the request counter, the access log line) and answers as the app's route does.
 * Anything out of the ordinary goes on to the app, which answers it as before: a request the
 * checks refuse (so the error, its body and headers come from one place), and any request with an
 * Origin, which CORS may have to answer.
 *
 * One handler per method, so that the counter and the fixed part of the log line are found once,
 * not for every request.
 */
export function healthFastPath(
  deps: Pick<AppDeps, "config" | "log" | "metrics" | "now" | "newId">,
  app: Fetch,
): Record<"GET" | "HEAD", Fetch> {
  const now = deps.now ?? (() => performance.now());
  const newId = deps.newId ?? (() => crypto.randomUUID());
  const refuseRequest = requestGuard(accessPolicy(deps.config));
  const answer = (method: "GET" | "HEAD"): Fetch => {
    const count = deps.metrics?.requestCounter(method, "/health", 200);
    const logLine = deps.log.accessLineFor(method, "/health", 200);
    // Copied into each response (Headers are copied at construction), with that request's id.
    const headers = new Headers({ "content-type": "application/json", "x-request-id": "" });
    const init = { headers };
    return (request, server) => {
      const startedAt = now();
      if (request.headers.has("origin") || refuseRequest(request)) return app(request, server);
      const requestId = requestIdOf(request.headers.get("x-request-id"), newId);
      count?.();
      logLine(now() - startedAt, requestId);
      headers.set("x-request-id", requestId);
      return new Response(BODY, init);
    };
  };
  return { GET: answer("GET"), HEAD: answer("HEAD") };
}
