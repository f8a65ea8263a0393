import type { Server } from "bun";
import { dirname, join } from "node:path";
import { createApp } from "./app";
import type { Config } from "./config";
import { createAppServerEngine } from "./engine/app-server/engine";
import { checkCodexLogin, CodexLoginStatus, LOGIN_CHECK_TIMEOUT_MS } from "./engine/codex-auth";
import { type CodexBinary, locateCodex, probeCodex } from "./engine/codex-binary";
import { createSdkEngine, isChildPipeError } from "./engine/sdk-engine";
import type { Engine } from "./engine/types";
import type { Logger } from "./log";
import { createMetrics, type Metrics } from "./metrics";
import { healthFastPath } from "./routes/health-fast-path";
import { describeRefusal } from "./routes/messages";
import { type ClusterRuns, createRuns } from "./runs/cluster";
import { RUN_DEFAULTS, type RunRegistry } from "./runs/registry";
import { ClusterThreadOwners } from "./store/cluster-thread-owners";
import { RedisStore } from "./store/redis-store";
import { ThreadService } from "./runs/threads";
import { Tenants } from "./tenants/tenants";
import { SqliteThreadOwners, THREAD_OWNERS_FILE, type ThreadOwners } from "./tenants/thread-owners";
import { ATTEMPT_TIMEOUT_MS, WebhookDispatcher } from "./webhooks/dispatcher";
import { runWebhooks } from "./webhooks/run-webhooks";
import { parseWebhookSecret } from "./webhooks/signature";

/** How long turns get to end once cancelled at shutdown. */
const STOP_GRACE_MS = 5_000;
/** How long finished streams get to flush their last frames before connections are cut. */
const FLUSH_GRACE_MS = 1_000;
/** How long a `codex exec` whose turn has ended gets to exit (it takes ~20 ms) before it is killed. */
const EXIT_GRACE_MS = 5_000;

export type RunningServer = {
  server: Server<undefined>;
  url: string;
  codexPath: string;
  codexVersion: string;
  runs: RunRegistry;
  /** With --redis-url: the runs of every replica, through the shared store. */
  cluster: ClusterRuns | undefined;
  engine: Engine;
  /** The tenants of --tokens-file, which SIGHUP reloads; undefined without one. */
  tenants: Tenants | undefined;
  /** Whether codex can authenticate: checked once the server listens, and by GET /ready. */
  codexLogin: CodexLoginStatus;
  /**
   * Stops listening and starting turns, lets running turns finish until the shutdown timeout,
   * cancels the rest, then closes every connection. Each wait is bounded.
   */
  shutdown(): Promise<void>;
};

export class ListenError extends Error {}

/** What tests change that no flag does. */
export type ServerOptions = {
  /** The waits before webhook retries (default: 20 s doubling, five of them). */
  webhookRetryDelaysMs?: readonly number[];
};

export function formatUrl(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export function startServer(config: Config, log: Logger, options: ServerOptions = {}): RunningServer {
  const codex = locateCodex({
    explicitPath: config.codexPath,
    pathEnv: config.codexEnv.PATH,
    executableDir: dirname(process.execPath),
  });
  const codexVersion = probeCodex(codex);
  guardAgainstChildPipeErrors(log);
  // With tenants, which thread is whose: kept under --state-dir, opened first since it can fail;
  // with replicas, in the shared store, where every replica finds it.
  const sqliteOwners = config.tokensFile && config.redisUrl === undefined ? new SqliteThreadOwners(join(config.stateDir, THREAD_OWNERS_FILE)) : undefined;
  const tenants = config.tokensFile && Tenants.fromFile(config.tokensFile.path, config.tokensFile.tenants, log);
  const engine = createEngine(config, codex, log);
  // The gauges read the registry when scraped, after it exists.
  const metrics = createMetrics({
    activeTurns: () => runs.size,
    queuedTurns: () => runs.queued,
    activeCodexProcesses: () => engine.activeProcesses?.() ?? 0,
    retainedRuns: () => runs.retainedRuns,
    retainedRunBytes: () => runs.retainedBytes,
    pendingWebhookDeliveries: () => webhooks?.pendingCount ?? 0,
    ...(config.redisUrl !== undefined && { storeStreamLagSeconds: () => cluster?.streamLagSeconds ?? 0 }),
  });
  const store = createStore(config, log, metrics);
  const threadOwners: ThreadOwners | undefined = config.tokensFile && (store ? new ClusterThreadOwners(store) : sqliteOwners);
  // Without a secret no webhook can be sent (buildConfig requires one for any URL or host).
  const webhooks =
    config.webhookSecret === undefined
      ? undefined
      : new WebhookDispatcher({
          key: parseWebhookSecret(config.webhookSecret),
          log,
          observer: metrics,
          ...(options.webhookRetryDelaysMs && { retryDelaysMs: options.webhookRetryDelaysMs }),
        });
  const { runs, cluster } = createRuns(
    engine,
    log,
    {
      observer: metrics,
      ...(webhooks && { notifier: runWebhooks(webhooks, config.webhookUrl) }),
      maxConcurrent: config.maxConcurrentTurns,
      turnTimeoutMs: config.turnTimeoutMs,
      ...(config.stallTimeoutMs !== undefined && { stallTimeoutMs: config.stallTimeoutMs }),
      reattachGraceMs: config.reattachGraceMs,
      retentionMs: config.runRetentionMs,
      maxRetainedBytes: config.runRetentionBytes,
      ...(threadOwners && { threadOwners }),
    },
    store,
    { clusterMaxTurns: config.clusterMaxTurns, describeRefusal },
  );
  const threads = engine.threads && new ThreadService(engine.threads, runs);
  // Created before the app, which answers /ready from it; checking starts at once, beside the listener.
  const codexLogin = new CodexLoginStatus(() =>
    checkCodexLogin({ codexPath: codex.path, env: config.codexEnv, configOverrides: config.codexConfigOverrides, timeoutMs: LOGIN_CHECK_TIMEOUT_MS }),
  );
  void codexLogin.startup.then((login) => {
    if (login.state === "missing") log.warn(`codex cannot authenticate: ${login.detail}`);
    else if (login.state === "unknown") log.warn(`cannot tell whether codex can authenticate: ${login.detail}`);
    else log.debug("codex can authenticate", { detail: login.detail });
  });
  const tenancy = tenants && threadOwners && { tenants, threadOwners };
  const appDeps = { config, runs, ...(cluster && { cluster }), ...(threads && { threads }), ...(tenancy && { tenancy }), log, metrics, codexLogin };
  const app = createApp(appDeps);

  let server: Server<undefined>;
  try {
    server = Bun.serve({
      hostname: config.host,
      port: config.port,
      idleTimeout: config.idleTimeoutSeconds,
      // Bun's router sends methods other than GET and HEAD on to `fetch`.
      routes: { "/health": healthFastPath(appDeps, app.fetch) },
      fetch: app.fetch,
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const reason = code === "EADDRINUSE" ? "the address is already in use" : (err as Error).message;
    threadOwners?.close();
    cluster?.close();
    throw new ListenError(`cannot listen on ${formatUrl(config.host, config.port)}: ${reason}`);
  }
  // Only once listening: a server that cannot listen exits at once, with nothing started to stop.
  engine.warm?.();

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      const deadline = performance.now() + config.shutdownTimeoutMs;
      const drained = server.stop();
      runs.close();
      engine.drain?.();
      if (!(await runs.whenIdle(config.shutdownTimeoutMs))) {
        log.info("cancelling turns still running", { count: runs.size });
        runs.stopAll("cancelled");
        if (!(await runs.whenIdle(STOP_GRACE_MS))) log.warn("turns still running at shutdown", { count: runs.size });
      }
      // Every run has ended and handed its run.done to the webhooks: they get what is left of the
      // shutdown timeout, and at least one attempt's time, while the rest shuts down.
      const hooksSent = webhooks?.close(Math.max(deadline - performance.now(), ATTEMPT_TIMEOUT_MS));
      await Promise.race([drained, Bun.sleep(FLUSH_GRACE_MS)]);
      await server.stop(true);
      await Promise.all([engine.close?.(), hooksSent]);
      threadOwners?.close();
      // Last: the runs' final events are written by now (or never will be: the store is down).
      cluster?.close();
    })());

  return {
    server,
    url: formatUrl(config.host, server.port ?? config.port),
    codexPath: codex.path,
    codexVersion,
    runs,
    cluster,
    engine,
    tenants,
    codexLogin,
    shutdown,
  };
}

/** With --redis-url, the store replicas share through Redis; without, nothing (the registry alone). */
function createStore(config: Config, log: Logger, metrics: Metrics): RedisStore | undefined {
  if (config.redisUrl === undefined || config.replicaId === undefined) return undefined;
  return new RedisStore({
    url: config.redisUrl,
    replicaId: config.replicaId,
    retentionMs: config.runRetentionMs,
    maxEvents: RUN_DEFAULTS.maxEvents,
    log,
    observer: metrics,
  });
}

/** The engine that `--engine` names; the HTTP layer sees only the Engine interface. */
function createEngine(config: Config, codex: CodexBinary, log: Logger): Engine {
  const common = {
    codex,
    env: config.codexEnv,
    bypassApprovalsAndSandbox: config.bypassApprovalsAndSandbox,
    lean: config.leanCodex,
    configOverrides: config.codexConfigOverrides,
  };
  if (config.engine === "exec") {
    return createSdkEngine({ ...common, firstEventTimeoutMs: config.firstEventTimeoutMs, exitGraceMs: EXIT_GRACE_MS, log });
  }
  return createAppServerEngine({
    ...common,
    approvalPolicy: config.approvalPolicy,
    approvalTimeoutMs: config.approvalTimeoutMs,
    requestTimeoutMs: config.firstEventTimeoutMs,
    processes: config.appServers,
    recycle: config.appServerRecycle,
    log,
  });
}

let pipeGuardInstalled = false;

/**
 * A failed turn already reports what went wrong in its `done`; a pipe error must not also end the
 * process. Anything else uncaught is a bug: log it and exit rather than run on in an unknown state.
 */
function guardAgainstChildPipeErrors(log: Logger): void {
  if (pipeGuardInstalled) return;
  pipeGuardInstalled = true;
  process.on("uncaughtException", (err) => {
    if (isChildPipeError(err)) return;
    log.error("uncaught exception", { error: err.stack ?? String(err) });
    process.exit(1);
  });
}

/** SIGINT/SIGTERM shut down cleanly, so that no codex process outlives the server; a second signal exits at once. */
export function handleSignals(running: RunningServer, log: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      // Aborting sends `codex exec` its SIGTERM synchronously; app-server's interrupt is a request
      // that would never be read, so its processes are killed outright. Nothing outlives the server.
      running.runs.stopAll("cancelled");
      running.engine.killNow?.();
      process.exit(130);
    }
    signalled = true;
    log.info("shutting down", { signal, running_turns: running.runs.size });
    void running.shutdown().then(() => process.exit(0));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // SIGHUP would otherwise end the process; it means "reread the tokens file" only where there is one.
  const { tenants } = running;
  if (tenants) process.on("SIGHUP", () => tenants.reload());
}
