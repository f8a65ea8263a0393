import { Hono } from "hono";
import type { AppDeps, AppEnv } from "../app";
import { cancelRun } from "./cancel";
import { methodNotAllowed } from "./method-not-allowed";

export function runsRoute({ runs }: AppDeps): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .delete("/:id", (c) => c.json(cancelRun(runs, c.req.param("id"))))
    .all("/:id", methodNotAllowed("DELETE"));
}
