import type { Hono } from "hono";
import type { AppDeps, AppEnv } from "../app-types";
import { ApiError } from "../errors";
import type { RunView } from "../runs/cluster";
import { parseLastEventId } from "../sse/stream-run";
import type { Viewer } from "../tenants/tenant";
import { cancelRun } from "./cancel";
import { methodNotAllowed } from "./method-not-allowed";
import { streamRunEvents } from "./stream-run-events";

export function runRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { runs, cluster } = deps;
  const find = async (id: string, viewer: Viewer): Promise<RunView> => {
    const run = cluster ? await cluster.find(id, viewer) : runs.get(id, viewer);
    if (!run) throw new ApiError(404, "run_not_found", `No turn with id ${id} is running or recently finished.`);
    return run;
  };
  app
    .get("/runs", async (c) => {
      const tenant = c.get("tenant");
      return c.json({ runs: cluster ? await cluster.list(tenant) : runs.list(tenant).map((run) => run.summary()) });
    })
    .all("/runs", methodNotAllowed("GET"))
    .get("/runs/:id", async (c) => c.json((await find(c.req.param("id"), c.get("tenant"))).summary()))
    .delete("/runs/:id", async (c) => c.json(await cancelRun(deps, c.req.param("id"), c.get("tenant"))))
    .all("/runs/:id", methodNotAllowed("GET", "DELETE"))
    .get("/runs/:id/events", async (c) => {
      const run = await find(c.req.param("id"), c.get("tenant"));
      const afterId = parseLastEventId(c.req.header("last-event-id"));
      if (afterId === undefined) {
        throw new ApiError(400, "invalid_last_event_id", "Last-Event-ID must be the id of an event: a decimal integer.");
      }
      return streamRunEvents(c, run, afterId, deps);
    })
    .all("/runs/:id/events", methodNotAllowed("GET"));
}
