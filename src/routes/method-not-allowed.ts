import type { Context } from "hono";
import { ApiError } from "../errors";

/** Mounted after a resource's real handlers, so that only the other methods reach it. */
export function methodNotAllowed(...allowed: string[]) {
  return (c: Context): never => {
    throw new ApiError(405, "method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(" or ")}.`, {
      allow: allowed.join(", "),
    });
  };
}
