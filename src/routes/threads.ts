import { zValidator } from "@hono/zod-validator";
import type { Hono, MiddlewareHandler } from "hono";
import type { z } from "zod";
import type { AppDeps, AppEnv } from "../app-types";
import { EngineBusyError, InvalidCursorError, ThreadNotFoundError, TurnNotFoundError } from "../engine/types";
import { ApiError } from "../errors";
import { ThreadBusyError, ThreadHeldError } from "../runs/registry";
import type { ThreadService } from "../runs/threads";
import type { ThreadAccess } from "../tenants/thread-access";
import {
  describeIssues,
  threadForkSchema,
  threadListQuerySchema,
  threadParamsSchema,
  threadReadQuerySchema,
  threadRenameSchema,
} from "../schemas";
import { limitBody, requireJsonBody } from "./json-body";
import { methodNotAllowed } from "./method-not-allowed";

/** Every problem with the path, query or body, each named by its field. */
function validate<T extends "param" | "query" | "json", S extends z.ZodType>(target: T, schema: S) {
  return zValidator(target, schema, (result) => {
    if (!result.success) throw new ApiError(422, "invalid_request", describeIssues(result.error));
  });
}

/** What the thread layer refuses, as the client sees it. */
function refused(err: unknown): never {
  if (err instanceof ThreadNotFoundError) throw new ApiError(404, "thread_not_found", err.message);
  if (err instanceof TurnNotFoundError) throw new ApiError(404, "turn_not_found", err.message);
  if (err instanceof InvalidCursorError) throw new ApiError(400, "invalid_cursor", err.message);
  if (err instanceof ThreadBusyError || err instanceof ThreadHeldError) throw new ApiError(409, "thread_busy", err.message);
  if (err instanceof EngineBusyError) {
    throw new ApiError(503, "engine_busy", err.message, { "retry-after": String(err.retryAfterSeconds) });
  }
  throw err;
}

async function answer<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    refused(err);
  }
}

/** A fork's body is optional: a request without one forks the whole thread. */
const optionalJsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.header("content-type") === undefined && (await c.req.text()) === "") return next();
  return requireJsonBody(c, next);
};

/**
 * A tenant reaches only its own threads (an admin every one): another's answers 404 as an unknown
 * id does, checked before codex is asked anything.
 */
export function threadRoutes(app: Hono<AppEnv>, deps: AppDeps & { threads: ThreadService }, access: ThreadAccess): void {
  const { threads, config } = deps;
  const limitedBody = limitBody(config.maxBodyBytes);
  const threadId = validate("param", threadParamsSchema);

  app
    .get("/threads", validate("query", threadListQuerySchema), async (c) => {
      const { limit, cursor, cwd, q } = c.req.valid("query");
      const query = { limit, cursor, cwd, search: q };
      return c.json(await answer(access.list(query, c.get("tenant"), (page) => threads.list(page))));
    })
    .all("/threads", methodNotAllowed("GET"))
    .get("/threads/:id", threadId, validate("query", threadReadQuerySchema), async (c) => {
      const { turns_limit, cursor } = c.req.valid("query");
      const { id } = c.req.valid("param");
      await answer(access.check(id, c.get("tenant")));
      return c.json(await answer(threads.read(id, { turnsLimit: turns_limit, cursor })));
    })
    .patch("/threads/:id", threadId, limitedBody, requireJsonBody, validate("json", threadRenameSchema), async (c) => {
      const { id } = c.req.valid("param");
      await answer(access.check(id, c.get("tenant")));
      return c.json(await answer(threads.rename(id, c.req.valid("json").name)));
    })
    .delete("/threads/:id", threadId, async (c) => {
      const { id } = c.req.valid("param");
      await answer(access.check(id, c.get("tenant")));
      await answer(threads.archive(id));
      await access.forget(id);
      return c.json({ id, archived: true });
    })
    .all("/threads/:id", methodNotAllowed("GET", "PATCH", "DELETE"))
    .post("/threads/:id/fork", threadId, limitedBody, optionalJsonBody, validate("json", threadForkSchema), async (c) => {
      const { id } = c.req.valid("param");
      const tenant = c.get("tenant");
      await answer(access.check(id, tenant));
      const forked = await answer(threads.fork(id, c.req.valid("json").turn_id));
      // A fork is the forking tenant's, whoever's thread it came from.
      await access.claim(forked, tenant.name);
      return c.json({ thread_id: forked }, 201);
    })
    .all("/threads/:id/fork", methodNotAllowed("POST"));
}
