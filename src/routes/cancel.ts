import { ApiError } from "../errors";
import type { RunRegistry } from "../runs/registry";
import type { Viewer } from "../tenants/tenant";

export function notRunning(id: string): ApiError {
  return new ApiError(404, "run_not_found", `No turn with id ${id} is running.`);
}

/**
 * Shared by `user_cancel` and `DELETE /runs/{id}`: the answer is sent once the stop is under way.
 * Another tenant's run is not running, for `viewer`.
 */
export function cancelRun(runs: RunRegistry, id: string, viewer: Viewer): { cancelled: string } {
  if (!runs.cancel(id, viewer)) throw notRunning(id);
  return { cancelled: id };
}
