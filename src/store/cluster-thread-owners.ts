import type { ThreadOwners } from "../tenants/thread-owners";
import type { ClusterStore } from "./cluster-store";

/**
 * The tenants' thread → tenant map in the shared store, with replicas: a thread started on one
 * replica is its tenant's on every replica, and stays so when one restarts.
 */
export class ClusterThreadOwners implements ThreadOwners {
  constructor(private readonly store: Pick<ClusterStore, "threadTenant" | "claimThreadTenant" | "forgetThreadTenant">) {}

  ownerOf(threadId: string): Promise<string | undefined> {
    return this.store.threadTenant(threadId);
  }

  claim(threadId: string, tenant: string): Promise<void> {
    return this.store.claimThreadTenant(threadId, tenant);
  }

  forget(threadId: string): Promise<void> {
    return this.store.forgetThreadTenant(threadId);
  }

  /** The store is the cluster's to close. */
  close(): void {}
}
