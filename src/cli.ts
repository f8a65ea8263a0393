#!/usr/bin/env bun
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { dirname } from "node:path";
import { defineCommand, runMain } from "citty";
import pkg from "../package.json" with { type: "json" };
import type { Config } from "./config";
import type { CodexLogin } from "./engine/codex-auth";
import { locateCodex, probeCodex } from "./engine/codex-binary";
import { EngineError } from "./engine/types";
import { args, buildConfig, BYPASS_FLAG, collectRepeated, ConfigError, normalizeOptionalBoolean } from "./flags";
import { renderHelp } from "./help";
import { isLoopbackHost } from "./middleware/access";
import { createLogger } from "./log";
import { handleSignals, ListenError, startServer } from "./server";
import type { StoreState } from "./store/cluster-store";
import { redactRedisUrl } from "./store/redis-store";
import { ThreadOwnersError } from "./tenants/thread-owners";

export const EXPOSED_WARNING =
  "WARNING: reachable beyond loopback, with bypass ON and no --auth-token: anyone who can reach this port can run any command on this host.";

/** A Config has it; callers that only ever run with one token may leave it out. */
type OptionalTokensFile = { tokensFile?: Config["tokensFile"] };

/** Listening beyond loopback, running codex without a sandbox, and letting anyone in. */
export function isExposed(config: Pick<Config, "host" | "bypassApprovalsAndSandbox" | "authToken"> & OptionalTokensFile): boolean {
  return !isLoopbackHost(config.host) && config.bypassApprovalsAndSandbox && config.authToken === undefined && config.tokensFile === undefined;
}

/** Who may call the API: anyone, the holder of the one token, or the tenants of a tokens file. */
function authLine(config: Pick<Config, "authToken"> & OptionalTokensFile): string {
  if (config.tokensFile) {
    const count = config.tokensFile.tenants.length;
    return `Auth: ${count} tenant${count === 1 ? "" : "s"} from ${config.tokensFile.path} (SIGHUP reloads it)`;
  }
  return config.authToken === undefined ? "Auth: none" : "Auth: bearer token required";
}

/** The banner's login line: a warning, with what to do, when codex cannot authenticate. */
export function loginLine(login: CodexLogin): string {
  if (login.state === "missing") return `WARNING: codex cannot authenticate: ${login.detail}`;
  return login.state === "ok" ? "Codex login: ok" : "Codex login: unknown (see the log)";
}

/** Where webhooks go, when anywhere: the host of --webhook-url (its path or query may hold a token), and where a request's own may go. */
function webhooksLine(config: Pick<Config, "webhookUrl" | "webhookAllowedHosts">): string | undefined {
  const to = config.webhookUrl === undefined ? [] : [`to ${new URL(config.webhookUrl).host}`];
  const own = config.webhookAllowedHosts.length === 0 ? [] : [`a request's webhook_url on ${config.webhookAllowedHosts.join(", ")}`];
  const targets = [...to, ...own];
  return targets.length === 0 ? undefined : `Webhooks: ${targets.join(", and ")}`;
}

/** Which Host names get an answer: on loopback, from anyone; beyond it, from browsers. */
function hostsLine(config: Pick<Config, "host" | "allowedHosts">): string {
  const listed = config.allowedHosts.join(", ");
  if (isLoopbackHost(config.host)) return `Hosts: loopback addresses, localhost${listed && `, ${listed}`}`;
  return `Browsers: by IP address or localhost${listed ? `, or as ${listed}` : " (names: --allowed-hosts)"}`;
}

/** With --redis-url: who this replica is, which Redis (password hidden), and whether it answers now. */
function replicasLine(config: Partial<Pick<Config, "redisUrl" | "replicaId" | "clusterMaxTurns">>, storeState: StoreState | undefined): string | undefined {
  if (config.redisUrl === undefined) return undefined;
  const limit = config.clusterMaxTurns === undefined ? "" : `, at most ${config.clusterMaxTurns} turns across them`;
  const state = storeState === "up" ? "connected" : "UNREACHABLE: new turns get 503 until it answers";
  return `Replicas: ${config.replicaId} via ${redactRedisUrl(config.redisUrl)} (${state})${limit}`;
}

export function banner(
  url: string,
  codexVersion: string,
  config: Pick<
    Config,
    | "host"
    | "bypassApprovalsAndSandbox"
    | "authToken"
    | "allowedHosts"
    | "webConsole"
    | "engine"
    | "appServers"
    | "approvalPolicy"
    | "webhookUrl"
    | "webhookAllowedHosts"
  > &
    OptionalTokensFile &
    Partial<Pick<Config, "redisUrl" | "replicaId" | "clusterMaxTurns">>,
  login: CodexLogin,
  storeState?: StoreState,
): string {
  const mode = config.bypassApprovalsAndSandbox
    ? "Mode: bypass ON (sandbox danger-full-access, approvals never)"
    : config.approvalPolicy === "never"
      ? "Mode: bypass OFF (codex's own sandbox, approvals never)"
      : `Mode: bypass OFF (codex's own sandbox, approvals ${config.approvalPolicy}: answer with user_confirm)`;
  const engine =
    config.engine === "exec"
      ? "Engine: exec (one codex exec process per turn)"
      : `Engine: app-server (${config.appServers} codex app-server process${config.appServers === 1 ? "" : "es"})`;
  const lines = [
    `codex-http-server ${pkg.version} (${codexVersion})`,
    "",
    `Server listening on: ${url}`,
    "",
    "Endpoints:",
    ...(config.webConsole ? ["  GET    /                   web console"] : []),
    "  GET    /health             health check",
    "  GET    /ready              readiness: codex can authenticate",
    "  POST   /messages           run a Codex turn, streamed as SSE",
    "  GET    /runs               running and recent turns",
    "  GET    /runs/{id}          one turn",
    "  GET    /runs/{id}/events   replay and follow a turn (Last-Event-ID)",
    "  DELETE /runs/{id}          cancel a running turn",
    "  GET    /threads            stored threads (limit, cursor, cwd, q)",
    "  GET    /threads/{id}       a thread and its turns",
    "  PATCH  /threads/{id}       rename a thread",
    "  DELETE /threads/{id}       archive a thread",
    "  POST   /threads/{id}/fork  a new thread with its history",
    "  GET    /openapi.json       OpenAPI 3.1 description",
    "  GET    /metrics            Prometheus metrics",
    "",
    engine,
    mode,
    authLine(config),
    hostsLine(config),
    ...[webhooksLine(config), replicasLine(config, storeState)].filter((line) => line !== undefined),
    ...(login.state === "missing" ? [] : [loginLine(login)]),
    ...(isExposed(config) ? ["", EXPOSED_WARNING] : []),
    ...(login.state === "missing" ? ["", loginLine(login)] : []),
  ];
  const width = Math.max(...lines.map((line) => line.length));
  const rule = "─".repeat(width + 4);
  return [`╭${rule}╮`, ...lines.map((line) => `│  ${line.padEnd(width)}  │`), `╰${rule}╯`].join("\n");
}

/** The machine's memory, or the container's limit when that is lower (cgroup v2, then v1). */
function availableMemoryBytes(): number {
  const limits = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"].map((path) => {
    try {
      return Number(readFileSync(path, "utf8").trim());
    } catch {
      return Number.NaN;
    }
  });
  return Math.min(totalmem(), ...limits.filter((limit) => Number.isFinite(limit) && limit > 0));
}

function fail(message: string, exitCode: number): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(exitCode);
}

const META = { name: "sse-http-server", version: pkg.version, description: "Run OpenAI Codex turns over HTTP, streamed as Server-Sent Events" };

export const command = defineCommand({
  meta: META,
  args,
  async run({ args: parsed }) {
    let built: ReturnType<typeof buildConfig>;
    try {
      const codexConfig = collectRepeated(process.argv.slice(2), "codex-config");
      built = buildConfig(parsed, process.env, process.cwd(), availableMemoryBytes(), codexConfig);
    } catch (err) {
      if (err instanceof ConfigError) fail(err.message, 2);
      throw err;
    }
    const { config, warnings } = built;
    const log = createLogger(config.logLevel, undefined, undefined, config.logFormat);
    for (const warning of warnings) log.warn(warning);
    let running: ReturnType<typeof startServer>;
    try {
      running = startServer(config, log);
    } catch (err) {
      if (err instanceof ListenError || err instanceof EngineError || err instanceof ThreadOwnersError) fail(err.message, 1);
      throw err;
    }
    handleSignals(running, log);
    // The server listens meanwhile; the check takes a few dozen ms, at most its deadline.
    const [login] = await Promise.all([running.codexLogin.startup, running.cluster?.store.ready]);
    process.stdout.write(`${banner(running.url, running.codexVersion, config, login, running.cluster?.store.state)}\n`);
    if (isExposed(config)) log.warn(EXPOSED_WARNING);
    log.debug("codex binary", { path: running.codexPath });
  },
});

/**
 * `--version`: this server's version and that of the codex it would run, found as at start-up.
 * Exit code 1 when no working codex is found, so that a deployment check can rely on it.
 */
function printVersions(argv: string[]): never {
  const explicitPath = collectRepeated(argv, "codex-path").at(-1) || process.env.CODEX_PATH || undefined;
  process.stdout.write(`sse-http-server ${pkg.version}\n`);
  try {
    const codex = locateCodex({ explicitPath, pathEnv: process.env.PATH, executableDir: dirname(process.execPath) });
    process.stdout.write(`${probeCodex(codex)} (${codex.path})\n`);
    process.exit(0);
  } catch (err) {
    if (err instanceof EngineError) fail(err.message, 1);
    throw err;
  }
}

/** `--help`: coloured for a terminal only, so that a pipe or a file gets plain text (NO_COLOR as everywhere). */
function printHelp(): never {
  const colour = process.stdout.isTTY === true && !process.env.NO_COLOR;
  process.stdout.write(`${renderHelp(META, colour)}\n`);
  process.exit(0);
}

if (import.meta.main) {
  const argv = normalizeOptionalBoolean(process.argv.slice(2), BYPASS_FLAG);
  if (argv.includes("--help") || argv.includes("-h")) printHelp();
  if (argv.includes("--version") || argv.includes("-v")) printVersions(argv);
  void runMain(command, { rawArgs: argv });
}
