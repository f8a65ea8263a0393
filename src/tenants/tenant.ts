/**
 * Who a request comes from: the tenant whose token it carries. Without a tokens file there is one
 * implicit admin tenant, so that every route has one path whether tenants are configured or not.
 */
export type Tenant = {
  name: string;
  /** Sees and can cancel every run and thread, its own and every other tenant's. */
  admin: boolean;
  /** Its turns' work_dir must lie inside this real path, which is also their default work_dir. */
  workspaceRoot?: string;
  /** Turns of this tenant running at once; more get 429 tenant_turn_limit. */
  maxConcurrentTurns?: number;
  /** The tenant of a server without a tokens file: its name stays out of log lines. */
  implicit?: true;
};

/** The one tenant of a server without a tokens file: whoever holds the token (or anyone, without one). */
export const IMPLICIT_TENANT: Tenant = { name: "default", admin: true, implicit: true };

/** What a request may see: its own runs and threads, or all of them as an admin. */
export type Viewer = Pick<Tenant, "name" | "admin">;

/** Whether `viewer` may see what `owner` started (an unowned run or thread: admins only). */
export function canSee(viewer: Viewer, owner: string | undefined): boolean {
  return viewer.admin || owner === viewer.name;
}

/** The tenant's name for a log line: none for the implicit tenant, whose lines stay as they were. */
export function tenantLogName(tenant: Tenant | undefined): string | undefined {
  return tenant === undefined || tenant.implicit ? undefined : tenant.name;
}
