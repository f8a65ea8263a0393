import type { AppDeps } from "../app-types";
import { ApiError } from "../errors";
import type { Viewer } from "../tenants/tenant";

export function notRunning(id: string): ApiError {
  return new ApiError(404, "run_not_found", `No turn with id ${id} is running.`);
}

/**
 * Shared by `user_cancel` and `DELETE /runs/{id}`: the answer is sent once the stop is under way
 * (on another replica: once its owner has stopped it). Another tenant's run is not running, for `viewer`.
 */
export async function cancelRun({ runs, cluster }: Pick<AppDeps, "runs" | "cluster">, id: string, viewer: Viewer): Promise<{ cancelled: string }> {
  if (!(cluster ? await cluster.cancel(id, viewer) : runs.cancel(id, viewer))) throw notRunning(id);
  return { cancelled: id };
}
