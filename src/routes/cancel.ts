import type { AppDeps } from "../app-types";
import { ApiError } from "../errors";

export function notRunning(id: string): ApiError {
  return new ApiError(404, "run_not_found", `No turn with id ${id} is running.`);
}

/** Shared by `user_cancel` and `DELETE /runs/{id}`: the answer is sent once the stop is under way (on another replica: once its owner has stopped it). */
export async function cancelRun({ runs, cluster }: Pick<AppDeps, "runs" | "cluster">, id: string): Promise<{ cancelled: string }> {
  if (!(cluster ? await cluster.cancel(id) : runs.cancel(id))) throw notRunning(id);
  return { cancelled: id };
}
