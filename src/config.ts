import type { ApprovalPolicy } from "./engine/types";
import type { LogFormat } from "./log";
import type { TenantEntry } from "./tenants/tokens-file";

export const LOG_LEVELS = ["off", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `exec`: one `codex exec` per turn, through the SDK; `app-server`: a pool of long-lived `codex app-server` processes. */
export const ENGINES = ["exec", "app-server"] as const;
export type EngineName = (typeof ENGINES)[number];

/** Everything the server needs to know, parsed once from flags and environment by the CLI. */
export type Config = {
  host: string;
  port: number;
  /** Run codex with sandbox `danger-full-access` and approval policy `never`. */
  bypassApprovalsAndSandbox: boolean;
  maxBodyBytes: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Where a turn runs when the request names no `work_dir`. */
  defaultWorkDir: string;
  /** An explicit codex binary (`--codex-path` or `CODEX_PATH`); otherwise it is looked up. */
  codexPath: string | undefined;
  /** The environment codex runs with (CODEX_HOME, CODEX_API_KEY, PATH, ...). */
  codexEnv: Record<string, string>;
  heartbeatMs: number;
  /** A codex that has produced no event by then is treated as broken and stopped. */
  firstEventTimeoutMs: number;
  /** Required as `Authorization: Bearer` on every route but /health, when set. */
  authToken: string | undefined;
  /**
   * `--tokens-file`: its absolute path (reread on SIGHUP) and the tenants it named at start-up;
   * undefined: one implicit admin tenant, named by `authToken` (or no token at all).
   */
  tokensFile: { path: string; tenants: TenantEntry[] } | undefined;
  /** Where the server keeps its own state: which tenant owns which thread. */
  stateDir: string;
  /** Browser origins, besides the server's own, that may call the API (answered with CORS). */
  allowedOrigins: string[];
  /**
   * Names, besides IP addresses and localhost, by which a browser may address this server (and
   * which pass the loopback Host check): `name`, or `.domain` for it and every name under it.
   */
  allowedHosts: string[];
  /** Turns beyond this many at once are refused with 429. */
  maxConcurrentTurns: number;
  /** A turn still running after this long is stopped with status `timeout`. */
  turnTimeoutMs: number | undefined;
  /** A turn from which codex sends no event for this long is stopped with status `timeout`; undefined: never. */
  stallTimeoutMs: number | undefined;
  /** When set (a real path), every work_dir must lie inside it, and it is the default work_dir. */
  workspaceRoot: string | undefined;
  /** How long running turns may go on after SIGTERM before they are cancelled. */
  shutdownTimeoutMs: number;
  /** A connection that sends nothing for this long is closed (SSE streams excepted). */
  idleTimeoutSeconds: number;
  /** How long a turn whose clients all went away goes on, waiting for one to reattach; 0: cancel at once. */
  reattachGraceMs: number;
  /** How long a finished run can still be listed and replayed. */
  runRetentionMs: number;
  /** The bytes of event data finished runs may hold together; past it the oldest finished runs are dropped. */
  runRetentionBytes: number;
  /** Serve the web console at GET /. */
  webConsole: boolean;
  /** Switch off codex features a headless server never uses (see engine/lean-profile.ts). */
  leanCodex: boolean;
  /** `KEY=VALUE` codex config overrides from `--codex-config`, in order. */
  codexConfigOverrides: string[];
  engine: EngineName;
  /** How many `codex app-server` processes the app-server engine keeps. */
  appServers: number;
  /** When an idle app-server process is replaced by a fresh one: after so many threads, or above so much memory. */
  appServerRecycle: { maxThreads: number; maxRssBytes: number };
  /** When codex asks a client before it acts (app-server engine, bypass off); `never` with exec. */
  approvalPolicy: ApprovalPolicy;
  /** An approval not answered within this is denied. */
  approvalTimeoutMs: number;
  /** Where every turn's webhooks go (`--webhook-url`), if anywhere. */
  webhookUrl: string | undefined;
  /** The `whsec_` secret that signs webhooks; set whenever a webhook can be sent. */
  webhookSecret: string | undefined;
  /** Hosts a request's own `webhook_url` may name: names, `.domain`, IP addresses (IPv6 unbracketed). */
  webhookAllowedHosts: string[];
  /** The Redis that replicas share runs, threads and limits through; undefined: one process, nothing shared. */
  redisUrl: string | undefined;
  /** This replica's name in the shared store (set whenever redisUrl is). */
  replicaId: string | undefined;
  /** Turns running at once across every replica; undefined: no cluster-wide limit. */
  clusterMaxTurns: number | undefined;
};

export const DEFAULTS = {
  addr: "0.0.0.0:8081",
  maxBodyBytes: 1024 * 1024,
  heartbeatMs: 15_000,
  firstEventTimeoutMs: 60_000,
  shutdownTimeoutSeconds: 30,
  runRetentionSeconds: 600,
  /** Room for 16 runs at the event log's 16 MiB cap, or thousands of ordinary turns, for what two codex processes cost. */
  runRetentionBytes: 256 * 1024 * 1024,
  idleTimeoutSeconds: 10,
  approvalTimeoutSeconds: 300,
  /**
   * About 1 MiB a thread over a ~190 MiB start. Measured (bench app-server-memory): 1,000 new
   * threads peaked at 577 MiB with these limits, 1,224 MiB with a process never replaced.
   */
  appServerMaxThreads: 256,
  appServerMaxRss: "1g",
  stallTimeoutSeconds: 600,
} as const;

/** What one codex process costs in memory, measured here (see the README's Limits section). */
export const CODEX_PROCESS_BYTES = 150 * 1024 * 1024;

/** As many turns as fit in half of the machine's memory, at least one. */
export function defaultMaxConcurrentTurns(totalMemoryBytes: number): number {
  return Math.max(1, Math.floor(totalMemoryBytes / 2 / CODEX_PROCESS_BYTES));
}
