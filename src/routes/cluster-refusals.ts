import { ApiError } from "../errors";
import {
  ApprovalNotPending,
  ClusterLimitError,
  ReplicaUnavailableError,
  RunNotRunning,
  ThreadNotStoredError,
  ThreadUnavailableError,
} from "../runs/cluster";
import { StoreUnavailableError } from "../store/cluster-store";

const RETRY = { "retry-after": "5" };

/** What the replicas' refusals (runs/cluster.ts) tell the client, from any route; undefined for any other error. */
export function clusterRefusal(err: unknown): ApiError | undefined {
  if (err instanceof StoreUnavailableError) return new ApiError(503, "store_unavailable", `${sentence(err.message)} Try again later.`, RETRY);
  if (err instanceof ThreadUnavailableError) return new ApiError(503, "thread_unavailable", sentence(err.message), RETRY);
  if (err instanceof ReplicaUnavailableError) return new ApiError(503, "replica_unavailable", sentence(err.message), RETRY);
  if (err instanceof ClusterLimitError) return new ApiError(429, "too_many_turns", sentence(err.message), RETRY);
  if (err instanceof ThreadNotStoredError) return new ApiError(404, "thread_not_found", err.message);
  if (err instanceof RunNotRunning) return new ApiError(404, "run_not_found", err.message);
  if (err instanceof ApprovalNotPending) return new ApiError(404, "approval_not_found", err.message);
  return undefined;
}

/** The errors' texts are lower-case clauses, as the registry's; the API answers sentences. */
function sentence(text: string): string {
  const capital = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
