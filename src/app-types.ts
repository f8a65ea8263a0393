/**
 * The types the app and its routes share. Routes import them from here rather than from app.ts,
 * which imports the routes: a type-only loop is still a loop to read.
 */
import type { Config } from "./config";
import type { CodexLogin } from "./engine/codex-auth";
import type { Logger } from "./log";
import type { Metrics } from "./metrics";
import type { ClusterRuns } from "./runs/cluster";
import type { RunRegistry } from "./runs/registry";
import type { ThreadService } from "./runs/threads";
import type { Tenant } from "./tenants/tenant";
import type { Tenants } from "./tenants/tenants";
import type { ThreadOwners } from "./tenants/thread-owners";

export type AppDeps = {
  config: Pick<
    Config,
    | "host"
    | "maxBodyBytes"
    | "heartbeatMs"
    | "defaultWorkDir"
    | "workspaceRoot"
    | "authToken"
    | "allowedOrigins"
    | "allowedHosts"
    | "bypassApprovalsAndSandbox"
    | "webConsole"
    | "approvalPolicy"
    | "webhookAllowedHosts"
  >;
  runs: RunRegistry;
  /** With --redis-url: every replica's runs and threads, through the shared store; without, the registry alone. */
  cluster?: ClusterRuns;
  /** codex's stored threads; without them (an engine that cannot reach them) the /threads routes are not there. */
  threads?: ThreadService;
  /**
   * The tenants of a tokens file and which threads are whose; without them, one implicit admin
   * tenant named by `config.authToken` (or no token at all).
   */
  tenancy?: { tenants: Tenants; threadOwners: ThreadOwners };
  log: Logger;
  /** Counters for /metrics; without them the route is not there. */
  metrics?: Metrics;
  /** Whether codex can authenticate, for GET /ready; without it, /ready says `unknown`. */
  codexLogin?: { current(): Promise<CodexLogin> };
  now?: () => number;
  newId?: () => string;
};

/** The Bun server, when there is one: SSE responses switch off its idle timeout per request. */
export type AppEnv = {
  Bindings: { timeout?(request: Request, seconds: number): void } | undefined;
  Variables: { requestId: string; tenant: Tenant };
};
