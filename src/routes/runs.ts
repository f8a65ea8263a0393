import type { Hono } from "hono";
import type { AppDeps, AppEnv } from "../app";
import { cancelRun } from "./cancel";
import { methodNotAllowed } from "./method-not-allowed";

export function runRoutes(app: Hono<AppEnv>, { runs }: AppDeps): void {
  app
    .delete("/runs/:id", (c) => c.json(cancelRun(runs, c.req.param("id"))))
    .all("/runs/:id", methodNotAllowed("DELETE"));
}
