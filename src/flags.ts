/**
 * The command line's flags and environment variables, and how they become one typed `Config`:
 * pure functions, table-tested (test/cli-parse.test.ts). cli.ts holds the command that uses them.
 */
import { readFileSync, realpathSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type { ArgsDef, ParsedArgs } from "citty";
import { type Config, DEFAULTS, defaultMaxConcurrentTurns, ENGINES, type EngineName, LOG_LEVELS, type LogLevel } from "./config";
import { codexHome } from "./engine/codex-home";
import { APPROVAL_POLICIES, type ApprovalPolicy } from "./engine/types";
import { bareHost, BEARER_TOKEN } from "./middleware/access";
import { LOG_FORMATS, type LogFormat } from "./log";
import { readTokensFile, type TenantEntry, TokensFileError } from "./tenants/tokens-file";
import { parseWebhookSecret, SECRET_EXAMPLE } from "./webhooks/signature";

export const BYPASS_FLAG = "dangerously-bypass-approvals-and-sandbox";

export const args = {
  addr: {
    type: "string",
    alias: "a",
    default: DEFAULTS.addr,
    valueHint: "HOST:PORT",
    description: "Address to listen on; IPv6 in brackets, e.g. [::1]:8081",
  },
  [BYPASS_FLAG]: {
    type: "string",
    default: "true",
    valueHint: "true|false",
    description:
      "Run codex with sandbox danger-full-access and approval policy never; false: the sandbox_mode codex is configured with, else read-only",
  },
  "log-format": {
    type: "string",
    default: "text",
    valueHint: "text|json",
    description: "Log lines on stderr as text, or as one JSON object a line (level from RUST_LOG)",
  },
  "max-body-bytes": {
    type: "string",
    default: String(DEFAULTS.maxBodyBytes),
    valueHint: "BYTES",
    description: "Largest request body accepted (suffixes k, m, g: 512k, 2m)",
  },
  "codex-path": {
    type: "string",
    valueHint: "PATH",
    description: "The codex binary (env CODEX_PATH); default: the SDK's, then beside this executable, then PATH",
  },
  "auth-token": {
    type: "string",
    valueHint: "TOKEN",
    description: "Require Authorization: Bearer TOKEN on the API; /health, /openapi.json and the console page stay open (env CODEX_SERVER_AUTH_TOKEN, preferred: argv is visible to other users)",
  },
  "auth-token-file": {
    type: "string",
    valueHint: "PATH",
    description: "Read the token from a file instead (one trailing newline ignored), e.g. a systemd credential or a Kubernetes secret (env CODEX_SERVER_AUTH_TOKEN_FILE)",
  },
  "tokens-file": {
    type: "string",
    valueHint: "PATH",
    description: "Several tenants, each with its own token, runs, threads, workspace root and turn limit: a JSON file (see README, Several users); SIGHUP reloads it; not with --auth-token (env CODEX_SERVER_TOKENS_FILE)",
  },
  "state-dir": {
    type: "string",
    valueHint: "DIR",
    description: "Where the server keeps its own state (which tenant owns which thread, with --tokens-file); default: CODEX_HOME/codex-http-server (env CODEX_SERVER_STATE_DIR)",
  },
  "allowed-origins": {
    type: "string",
    valueHint: "ORIGINS",
    description: "Comma-separated browser origins, besides the server's own, that may call the API, e.g. https://app.example.com",
  },
  "allowed-hosts": {
    type: "string",
    valueHint: "HOSTS",
    description: "Comma-separated names, besides IP addresses and localhost, by which a browser may reach this server (DNS rebinding guard); .example.com: it and every name under it (env CODEX_SERVER_ALLOWED_HOSTS)",
  },
  "max-concurrent-turns": {
    type: "string",
    valueHint: "N",
    description: "Turns running at once; more get 429 (default: as many codex processes of ~150 MB as fit in half the memory or container limit)",
  },
  "turn-timeout": {
    type: "string",
    valueHint: "SECONDS",
    description: "Stop a turn that runs longer; its stream ends with done status timeout (default: none)",
  },
  "stall-timeout": {
    type: "string",
    default: String(DEFAULTS.stallTimeoutSeconds),
    valueHint: "SECONDS",
    description: "Stop a turn from which codex has sent no event for this long (done status timeout); an approval waiting for a client does not count; 0: never",
  },
  "workspace-root": {
    type: "string",
    valueHint: "DIR",
    description: "Every work_dir must lie inside DIR (symlinks resolved); DIR is the default work_dir",
  },
  "shutdown-timeout": {
    type: "string",
    default: String(DEFAULTS.shutdownTimeoutSeconds),
    valueHint: "SECONDS",
    description: "On SIGTERM/SIGINT, how long running turns may finish before they are cancelled",
  },
  "reattach-grace": {
    type: "string",
    default: "0",
    valueHint: "SECONDS",
    description: "Keep a turn whose client disconnected running this long, so that a client can reattach (GET /runs/{id}/events); 0 cancels it at once",
  },
  "run-retention": {
    type: "string",
    default: String(DEFAULTS.runRetentionSeconds),
    valueHint: "SECONDS",
    description: "How long a finished run can still be listed (GET /runs) and replayed",
  },
  "run-retention-bytes": {
    type: "string",
    default: "256m",
    valueHint: "BYTES",
    description: "Memory for finished runs' events, kept for replay; past it the oldest finished runs are dropped (suffixes k, m, g)",
  },
  "webhook-url": {
    type: "string",
    valueHint: "URL",
    description: "POST every turn's signed webhooks (run.done, approval.requested) to URL (env CODEX_SERVER_WEBHOOK_URL); needs a webhook secret",
  },
  "webhook-secret": {
    type: "string",
    valueHint: "whsec_BASE64",
    description: "Sign webhooks with this Standard Webhooks secret, e.g. from echo \"whsec_$(openssl rand -base64 32)\" (env CODEX_SERVER_WEBHOOK_SECRET, preferred: argv is visible to other users)",
  },
  "webhook-allowed-hosts": {
    type: "string",
    valueHint: "HOSTS",
    description: "Comma-separated hosts that a request's own webhook_url may name (names, .example.com for it and every name under it, IP addresses); none by default (env CODEX_SERVER_WEBHOOK_ALLOWED_HOSTS)",
  },
  console: {
    type: "boolean",
    default: true,
    description: "Serve the web console at GET /",
    negativeDescription: "Do not serve the web console (the API stays as it is)",
  },
  lean: {
    type: "boolean",
    default: true,
    description: "Switch off codex start-up work a headless server never uses (plugin sync, apps, shell snapshot, analytics, update check); keys set in config.toml win",
    negativeDescription: "Run codex with its own defaults",
  },
  "codex-config": {
    type: "string",
    valueHint: "KEY=VALUE",
    description: "A codex config override, as codex's own -c (repeatable): e.g. model_reasoning_effort=\"low\"",
  },
  engine: {
    type: "string",
    default: "exec",
    valueHint: "exec|app-server",
    description: "exec: one `codex exec` process per turn (the SDK); app-server: turns share long-lived `codex app-server` processes, far cheaper per turn, with approvals",
  },
  "app-servers": {
    type: "string",
    default: "1",
    valueHint: "N",
    description: "How many codex app-server processes the app-server engine keeps",
  },
  "app-server-max-threads": {
    type: "string",
    default: String(DEFAULTS.appServerMaxThreads),
    valueHint: "N",
    description: "Replace an app-server process by a fresh one, once idle, after it has loaded this many threads (codex keeps ~1 MiB for each)",
  },
  "app-server-max-rss": {
    type: "string",
    default: DEFAULTS.appServerMaxRss,
    valueHint: "BYTES",
    description: "Replace an app-server process by a fresh one, once idle, when its memory is above this (suffixes k, m, g)",
  },
  "approval-policy": {
    type: "string",
    default: "never",
    valueHint: "never|on-request|untrusted",
    description: "When codex asks before it acts (app-server engine, bypass false): each request is an approval.requested event, answered with user_confirm",
  },
  "approval-timeout": {
    type: "string",
    default: String(DEFAULTS.approvalTimeoutSeconds),
    valueHint: "SECONDS",
    description: "Deny an approval that no client answers within this long",
  },
  "redis-url": {
    type: "string",
    valueHint: "URL",
    description: "Share runs, threads and limits with other replicas through this Redis, e.g. redis://:password@redis:6379 (env REDIS_URL); default: none, everything in this process",
  },
  "replica-id": {
    type: "string",
    valueHint: "ID",
    description: "This replica's name among the others (with --redis-url; env CODEX_SERVER_REPLICA_ID); default: HOSTNAME-PID. Keep it stable across restarts (a StatefulSet's pod name) so that its threads come back with it",
  },
  "cluster-max-turns": {
    type: "string",
    valueHint: "N",
    description: "Turns running at once across all replicas (with --redis-url); more get 429. --max-concurrent-turns still caps each replica (default: no cluster-wide cap)",
  },
  "idle-timeout": {
    type: "string",
    default: String(DEFAULTS.idleTimeoutSeconds),
    valueHint: "SECONDS",
    description: "Close a connection that sends nothing for this long, e.g. a stalled request body (1-255; SSE streams excepted)",
  },
} as const satisfies ArgsDef;

/** What citty puts in parsed args: each option, its camelCase twin, its aliases, and positionals. */
const KNOWN_KEYS = new Set([
  "_",
  ...Object.entries(args).flatMap(([name, def]) => [
    name,
    name.replace(/-(\w)/g, (_, letter: string) => letter.toUpperCase()),
    ...("alias" in def ? [def.alias] : []),
  ]),
]);

/** A user mistake in flags or environment: one line on stderr, exit code 2. */
export class ConfigError extends Error {}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function parseAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  const validHost = host !== undefined && (match?.[1] ? isIP(host) === 6 : isIP(host) === 4 || HOSTNAME.test(host));
  if (!validHost || !Number.isInteger(port) || port > 65535) {
    throw new ConfigError(`invalid address "${text}": expected HOST:PORT, e.g. 127.0.0.1:8081 or [::1]:8081`);
  }
  return { host, port };
}

const TRUE_WORDS = new Set(["true", "1", "yes", "on"]);
const FALSE_WORDS = new Set(["false", "0", "no", "off"]);

export function parseBoolean(name: string, value: string | boolean): boolean {
  if (typeof value === "boolean") return value;
  const word = value.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw new ConfigError(`invalid value "${value}" for --${name}: expected true or false`);
}

/**
 * Lets `--flag`, `--flag false` and `--flag=false` all work for a boolean that defaults to true:
 * citty would read `--flag false` as the flag plus a stray word, or take the next option as value.
 */
export function normalizeOptionalBoolean(argv: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg !== `--${name}`) {
      out.push(arg);
      continue;
    }
    const next = argv[i + 1]?.toLowerCase();
    if (next !== undefined && (TRUE_WORDS.has(next) || FALSE_WORDS.has(next))) {
      out.push(`--${name}=${argv[++i]}`);
    } else {
      out.push(`--${name}=true`);
    }
  }
  return out;
}

/** `text`, case and surrounding space aside, if it is one of `choices`; else the error names them. */
function parseChoice<T extends string>(flag: string, text: string, choices: readonly T[]): T {
  const choice = text.trim().toLowerCase();
  if (!(choices as readonly string[]).includes(choice)) {
    const named = choices.length > 2 ? `${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}` : choices.join(" or ");
    throw new ConfigError(`invalid value "${text}" for --${flag}: expected ${named}`);
  }
  return choice as T;
}

export function parseLogFormat(text: string): LogFormat {
  return parseChoice("log-format", text, LOG_FORMATS);
}

const BYTE_UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

export function parseByteSize(name: string, text: string): number {
  const match = /^(\d+)\s*([kmg]i?b?)?$/i.exec(text.trim());
  const unit = match?.[2]?.[0]?.toLowerCase();
  const bytes = Number(match?.[1]) * (BYTE_UNITS[unit ?? ""] ?? 1);
  if (!match || !Number.isSafeInteger(bytes) || bytes < 1) {
    throw new ConfigError(`invalid value "${text}" for --${name}: expected a positive number of bytes, e.g. 1048576 or 1m`);
  }
  return bytes;
}

export function parsePositiveInteger(name: string, text: string, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || value < 1 || value > max) {
    throw new ConfigError(`invalid value "${text}" for --${name}: expected a whole number from 1 to ${max}`);
  }
  return value;
}

/** Seconds as a positive number (fractions allowed), returned in milliseconds. */
export function parseSeconds(name: string, text: string): number {
  const value = Number(text.trim());
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || value <= 0) {
    throw new ConfigError(`invalid value "${text}" for --${name}: expected a positive number of seconds`);
  }
  return Math.round(value * 1000);
}

/** Seconds as for `parseSeconds`, or `0` for none (undefined). */
export function parseOptionalSeconds(name: string, text: string): number | undefined {
  return /^0+(\.0+)?$/.test(text.trim()) ? undefined : parseSeconds(name, text);
}

/** `a, b ,,c` → `["a", "b", "c"]`. */
function commaList(text: string): string[] {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
}

/** `https://a.example, http://localhost:3000` → exact origins; paths, wildcards and junk are refused. */
export function parseOrigins(text: string): string[] {
  return commaList(text).map((part) => {
    let origin: string | undefined;
    try {
      origin = new URL(part).origin;
    } catch {}
    if (origin === undefined || origin === "null" || origin !== part.replace(/\/$/, "").toLowerCase()) {
      throw new ConfigError(`invalid origin "${part}" for --allowed-origins: expected scheme://host[:port], e.g. https://app.example.com`);
    }
    return origin;
  });
}

/**
 * `codex.example.com, .corp.example` → lower-case names; `.domain` stands for it and every name
 * under it, as in Vite's server.allowedHosts. A bare top-level domain (`.com`) is refused: anyone
 * can register a name under it and point it here.
 */
export function parseAllowedHosts(text: string): string[] {
  return commaList(text).map((part) => parseHostName("allowed-hosts", part));
}

/** A name, or `.domain` for it and every name under it, in lower case; a bare top-level domain is refused. */
function parseHostName(flag: string, part: string): string {
  const name = part.toLowerCase();
  const domain = name.startsWith(".") ? name.slice(1) : name;
  if (!HOSTNAME.test(domain)) {
    throw new ConfigError(
      `invalid host "${part}" for --${flag}: expected a host name, e.g. codex.example.com, or .example.com for it and every name under it`,
    );
  }
  if (name.startsWith(".") && !domain.includes(".")) {
    throw new ConfigError(`invalid host "${part}" for --${flag}: anyone can register a name under ${domain}; list a domain you control, e.g. .example.${domain}`);
  }
  return name;
}

/**
 * The hosts a request's `webhook_url` may name: as `--allowed-hosts` reads names, plus IP
 * addresses (an IPv6 one with or without brackets), kept as a URL's host names them, unbracketed.
 */
export function parseWebhookAllowedHosts(text: string): string[] {
  return commaList(text).map((part) => {
    const bare = bareHost(part);
    if (isIP(bare) === 6) return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
    if (isIP(bare) === 4) return bare;
    return parseHostName("webhook-allowed-hosts", part);
  });
}

/** An http(s) URL, normalised. The value is not repeated in the error: a webhook URL may carry a token. */
export function parseWebhookUrl(source: string, text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text.trim());
  } catch {}
  if (url === undefined || !["http:", "https:"].includes(url.protocol)) {
    throw new ConfigError(`invalid value for ${source}: expected an http:// or https:// URL, e.g. https://hooks.example.com/codex`);
  }
  return url.href;
}

export function parseDirectory(name: string, path: string): string {
  try {
    if (statSync(path).isDirectory()) return realpathSync(path);
  } catch {}
  throw new ConfigError(`invalid value "${path}" for --${name}: not an existing directory`);
}

/** Every value of a repeatable `--name VALUE` / `--name=VALUE` option, in order (citty keeps only the last). */
export function collectRepeated(argv: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === `--${name}` && i + 1 < argv.length) values.push(argv[++i] as string);
    else if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
  }
  return values;
}

export const WEBHOOK_SECRET_ONLY_WARNING = "a webhook secret is set, but neither --webhook-url nor --webhook-allowed-hosts: no webhook is sent";

/**
 * The webhook settings: where every turn's hooks go, which hosts a request's own `webhook_url`
 * may name, and the secret that signs them all, which either needs (an unsigned hook could be
 * forged by anyone who can reach the receiver). Empty values count as unset. Messages name where
 * a value came from, never the secret or the URL.
 */
export function readWebhookConfig(
  parsed: { "webhook-url"?: string; "webhook-secret"?: string; "webhook-allowed-hosts"?: string },
  env: Record<string, string | undefined>,
): { webhookUrl: string | undefined; webhookSecret: string | undefined; webhookAllowedHosts: string[]; warning?: string } {
  const present = (given: { source: string; value: string } | undefined) => (given?.value.trim() ? given : undefined);
  const url = present(flagOrEnv("webhook-url", parsed["webhook-url"], "CODEX_SERVER_WEBHOOK_URL", env));
  const secret = present(flagOrEnv("webhook-secret", parsed["webhook-secret"], "CODEX_SERVER_WEBHOOK_SECRET", env));
  const hosts = flagOrEnv("webhook-allowed-hosts", parsed["webhook-allowed-hosts"], "CODEX_SERVER_WEBHOOK_ALLOWED_HOSTS", env);
  const webhookAllowedHosts = parseWebhookAllowedHosts(hosts?.value ?? "");
  if (secret) {
    try {
      parseWebhookSecret(secret.value);
    } catch (err) {
      throw new ConfigError(`${secret.source} ${(err as Error).message}`);
    }
  }
  const user = url?.source ?? (webhookAllowedHosts.length > 0 ? hosts?.source : undefined);
  if (user !== undefined && !secret) {
    throw new ConfigError(`${user} needs a secret to sign the webhooks: set CODEX_SERVER_WEBHOOK_SECRET (or --webhook-secret), e.g. from \`${SECRET_EXAMPLE}\``);
  }
  return {
    webhookUrl: url && parseWebhookUrl(url.source, url.value),
    webhookSecret: secret?.value,
    webhookAllowedHosts,
    ...(secret && user === undefined && { warning: WEBHOOK_SECRET_ONLY_WARNING }),
  };
}

export const SHORT_TOKEN_WARNING = "the auth token is shorter than 16 characters, which makes it easy to guess; use e.g. `openssl rand -hex 32`";

/** Where a setting came from: its flag when given, else its environment variable when set. */
function flagOrEnv(flag: string, flagValue: string | undefined, variable: string, env: Record<string, string | undefined>) {
  if (flagValue !== undefined) return { source: `--${flag}`, value: flagValue };
  const value = env[variable];
  return value === undefined ? undefined : { source: variable, value };
}

/**
 * The bearer token: from --auth-token / CODEX_SERVER_AUTH_TOKEN, or read from the file that
 * --auth-token-file / CODEX_SERVER_AUTH_TOKEN_FILE names; undefined when neither is set. An empty
 * token would switch auth off unseen, and one that no Authorization header can carry would let
 * no client in: both stop start-up. Messages name where the token came from, never the token.
 */
export function readAuthToken(
  tokenFlag: string | undefined,
  fileFlag: string | undefined,
  env: Record<string, string | undefined>,
): { token: string | undefined; warning?: string } {
  const direct = flagOrEnv("auth-token", tokenFlag, "CODEX_SERVER_AUTH_TOKEN", env);
  const file = flagOrEnv("auth-token-file", fileFlag, "CODEX_SERVER_AUTH_TOKEN_FILE", env);
  if (direct && file) throw new ConfigError(`${direct.source} and ${file.source} are both set: give the token one way`);
  if (!direct && !file) return { token: undefined };
  let token: string;
  let source: string;
  if (file) {
    if (file.value === "") throw new ConfigError(`${file.source} is empty: expected the path of a file holding the token`);
    source = `the token in ${file.source} ${file.value}`;
    try {
      token = readFileSync(file.value, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new ConfigError(`cannot read ${file.source} ${file.value}: ${(err as Error).message.split(",")[0]}`);
    }
  } else {
    ({ source, value: token } = direct as { source: string; value: string });
  }
  if (token === "") throw new ConfigError(`${source} is empty: set a token, or none to run without one`);
  if (!BEARER_TOKEN.test(token)) {
    throw new ConfigError(
      `${source} has characters an Authorization header cannot carry (spaces, control characters or non-ASCII): use visible ASCII, e.g. \`openssl rand -hex 32\``,
    );
  }
  return token.length < 16 ? { token, warning: SHORT_TOKEN_WARNING } : { token };
}

/**
 * The tenants of --tokens-file / CODEX_SERVER_TOKENS_FILE, read and checked (a file that does not
 * parse stops start-up), with its absolute path for reloads; undefined when neither is set. Every
 * token is in the file then: a token given another way too is refused.
 */
export function readTokensFileConfig(
  parsed: { "tokens-file"?: string; "auth-token"?: string; "auth-token-file"?: string },
  env: Record<string, string | undefined>,
  cwd: string,
): { tokensFile: { path: string; tenants: TenantEntry[] } | undefined; warnings: string[] } {
  const file = flagOrEnv("tokens-file", parsed["tokens-file"], "CODEX_SERVER_TOKENS_FILE", env);
  if (!file) return { tokensFile: undefined, warnings: [] };
  const token =
    flagOrEnv("auth-token", parsed["auth-token"], "CODEX_SERVER_AUTH_TOKEN", env) ??
    flagOrEnv("auth-token-file", parsed["auth-token-file"], "CODEX_SERVER_AUTH_TOKEN_FILE", env);
  if (token) throw new ConfigError(`${file.source} and ${token.source} are both set: with a tokens file, every token is in it`);
  if (file.value === "") throw new ConfigError(`${file.source} is empty: expected the path of a tokens file`);
  const path = resolve(cwd, file.value);
  try {
    const { tenants, warnings } = readTokensFile(path);
    return { tokensFile: { path, tenants }, warnings };
  } catch (err) {
    if (err instanceof TokensFileError) throw new ConfigError(err.message);
    throw err;
  }
}

/** `key.path=value` as codex's -c takes it; the value is TOML (or a bare string) and codex checks it. */
export function parseCodexOverride(text: string): string {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*=\S/.test(text)) {
    throw new ConfigError(`invalid value "${text}" for --codex-config: expected KEY=VALUE, e.g. model_reasoning_effort="low"`);
  }
  return text;
}

export function parseEngine(text: string): EngineName {
  return parseChoice("engine", text, ENGINES);
}

export function parseApprovalPolicy(text: string): ApprovalPolicy {
  if (text.trim().toLowerCase() === "on-failure") {
    throw new ConfigError("--approval-policy on-failure: codex 0.163's app-server no longer accepts it; use on-request or untrusted");
  }
  return parseChoice("approval-policy", text, APPROVAL_POLICIES);
}

/** Approvals need someone to ask: the app-server engine, with codex's sandbox on. */
export function checkApprovals(config: Pick<Config, "engine" | "approvalPolicy" | "bypassApprovalsAndSandbox">): void {
  if (config.approvalPolicy === "never") return;
  if (config.engine !== "app-server") {
    throw new ConfigError(`--approval-policy ${config.approvalPolicy} needs --engine app-server: codex exec cannot ask anyone`);
  }
  if (config.bypassApprovalsAndSandbox) {
    throw new ConfigError(`--approval-policy ${config.approvalPolicy} needs --${BYPASS_FLAG} false: bypass means codex never asks`);
  }
}

/**
 * RUST_LOG as codex and env_logger read it: `debug`, or directives like `warn,codex_http_server=debug`.
 * A bare level sets the default; a directive naming this server overrides it. Unknown words are
 * reported and ignored, as env_logger does.
 */
export function parseLogLevel(rustLog: string | undefined): { level: LogLevel; warning?: string } {
  let level: LogLevel = "info";
  let ours: LogLevel | undefined;
  const ignored: string[] = [];
  const isLevel = (word: string): word is LogLevel => (LOG_LEVELS as readonly string[]).includes(word);
  for (const directive of (rustLog ?? "").split(",").map((part) => part.trim()).filter(Boolean)) {
    const [target, value] = directive.includes("=") ? directive.split("=", 2) : [undefined, directive];
    const word = (value ?? "").toLowerCase();
    if (!isLevel(word)) ignored.push(directive);
    else if (target === undefined) level = word;
    else if (["codex_http_server", "sse_http_server"].includes(target)) ours = word;
  }
  const warning = ignored.length > 0 ? `RUST_LOG: ignored ${ignored.map((d) => `"${d}"`).join(", ")}` : undefined;
  return { level: ours ?? level, ...(warning && { warning }) };
}

/** The server's own secrets, and where they lie: none of them is codex's business. */
const SERVER_VARIABLES = new Set([
  "REDIS_URL",
  "CODEX_SERVER_AUTH_TOKEN",
  "CODEX_SERVER_AUTH_TOKEN_FILE",
  "CODEX_SERVER_WEBHOOK_SECRET",
  "CODEX_SERVER_WEBHOOK_URL",
  "CODEX_SERVER_TOKENS_FILE",
  "CODEX_SERVER_STATE_DIR",
]);

/** A replica's id names Redis keys and shows in logs: a safe alphabet, as request ids. */
const REPLICA_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * --redis-url, --replica-id and --cluster-max-turns. The replica flags mean nothing without a
 * store, so they are refused alone rather than silently ignored.
 */
export function parseClusterFlags(
  parsed: Pick<ParsedArgs<typeof args>, "redis-url" | "replica-id" | "cluster-max-turns">,
  env: Record<string, string | undefined>,
  machine: { hostname: string; pid: number },
): Pick<Config, "redisUrl" | "replicaId" | "clusterMaxTurns"> {
  const redisUrl = parsed["redis-url"] || env.REDIS_URL || undefined;
  const replicaText = parsed["replica-id"] || env.CODEX_SERVER_REPLICA_ID || undefined;
  const clusterText = parsed["cluster-max-turns"];
  if (redisUrl === undefined) {
    if (replicaText !== undefined) throw new ConfigError("--replica-id needs --redis-url: a replica alone has no others to be told from");
    if (clusterText) throw new ConfigError("--cluster-max-turns needs --redis-url; alone, --max-concurrent-turns is the limit");
    return { redisUrl: undefined, replicaId: undefined, clusterMaxTurns: undefined };
  }
  let protocol: string;
  try {
    protocol = new URL(redisUrl).protocol;
  } catch {
    throw new ConfigError("invalid --redis-url: expected redis://[user:password@]host[:port][/db], rediss:// for TLS");
  }
  if (!["redis:", "rediss:", "valkey:", "valkeys:", "redis+unix:", "redis+tls:"].includes(protocol)) {
    throw new ConfigError(`invalid --redis-url: ${protocol} is not a Redis URL scheme (redis://, rediss://)`);
  }
  const replicaId = replicaText ?? `${machine.hostname.replace(/[^A-Za-z0-9._:-]/g, "-")}-${machine.pid}`;
  if (!REPLICA_ID.test(replicaId)) {
    throw new ConfigError(`invalid --replica-id "${replicaId}": letters, digits and . _ : - only, at most 128, starting with a letter or digit`);
  }
  return { redisUrl, replicaId, clusterMaxTurns: clusterText ? parsePositiveInteger("cluster-max-turns", clusterText) : undefined };
}

export function buildConfig(
  parsed: ParsedArgs<typeof args>,
  env: Record<string, string | undefined>,
  cwd: string,
  totalMemoryBytes: number,
  codexConfig: readonly string[] = [],
  machine: { hostname: string; pid: number } = { hostname: hostname(), pid: process.pid },
): { config: Config; warnings: string[] } {
  const unknown = Object.keys(parsed).filter((key) => !KNOWN_KEYS.has(key));
  if (unknown.length > 0) throw new ConfigError(`unknown option --${unknown[0]}; see --help`);
  if (parsed._.length > 0) throw new ConfigError(`unexpected argument "${parsed._[0]}"; see --help`);
  const { host, port } = parseAddress(parsed.addr);
  const { level, warning } = parseLogLevel(env.RUST_LOG);
  // First: given with a token, the clash is the message, not what is wrong with the token.
  const tenants = readTokensFileConfig(parsed, env, cwd);
  const auth = readAuthToken(parsed["auth-token"], parsed["auth-token-file"], env);
  const webhooks = readWebhookConfig(parsed, env);
  // The token is for clients of this server, the webhook secret and URL for its receivers: they
  // (and where the token lies) stay out of codex's environment.
  const codexEnv = Object.fromEntries(
    Object.entries(env).filter(
      (entry): entry is [string, string] => entry[1] !== undefined && !SERVER_VARIABLES.has(entry[0]),
    ),
  );
  // RUST_LOG is this server's level. Passed on, it made codex write log lines that the SDK then
  // reads (RUST_LOG=info: 11.3 instead of 7.3 server CPU-ms a turn); codex has its own knob.
  delete codexEnv.RUST_LOG;
  delete codexEnv.CODEX_RUST_LOG;
  if (env.CODEX_RUST_LOG) codexEnv.RUST_LOG = env.CODEX_RUST_LOG;
  // `codex exec` takes an API key from CODEX_API_KEY only; OPENAI_API_KEY is what users of OpenAI's tools set.
  if (codexEnv.CODEX_API_KEY === undefined && codexEnv.OPENAI_API_KEY) codexEnv.CODEX_API_KEY = codexEnv.OPENAI_API_KEY;
  const workspaceRoot = parsed["workspace-root"] ? parseDirectory("workspace-root", parsed["workspace-root"]) : undefined;
  const engine = parseEngine(parsed.engine);
  const approvalPolicy = parseApprovalPolicy(parsed["approval-policy"]);
  const bypassApprovalsAndSandbox = parseBoolean(BYPASS_FLAG, parsed[BYPASS_FLAG]);
  checkApprovals({ engine, approvalPolicy, bypassApprovalsAndSandbox });
  return {
    config: {
      host,
      port,
      bypassApprovalsAndSandbox,
      maxBodyBytes: parseByteSize("max-body-bytes", parsed["max-body-bytes"]),
      logLevel: level,
      logFormat: parseLogFormat(parsed["log-format"]),
      defaultWorkDir: workspaceRoot ?? cwd,
      codexPath: parsed["codex-path"] || env.CODEX_PATH || undefined,
      codexEnv,
      heartbeatMs: DEFAULTS.heartbeatMs,
      firstEventTimeoutMs: DEFAULTS.firstEventTimeoutMs,
      authToken: auth.token,
      tokensFile: tenants.tokensFile,
      stateDir: resolve(cwd, parsed["state-dir"] || env.CODEX_SERVER_STATE_DIR || join(codexHome(codexEnv), "codex-http-server")),
      allowedOrigins: parsed["allowed-origins"] ? parseOrigins(parsed["allowed-origins"]) : [],
      allowedHosts: parseAllowedHosts(parsed["allowed-hosts"] ?? env.CODEX_SERVER_ALLOWED_HOSTS ?? ""),
      maxConcurrentTurns: parsed["max-concurrent-turns"]
        ? parsePositiveInteger("max-concurrent-turns", parsed["max-concurrent-turns"])
        : defaultMaxConcurrentTurns(totalMemoryBytes),
      turnTimeoutMs: parsed["turn-timeout"] ? parseSeconds("turn-timeout", parsed["turn-timeout"]) : undefined,
      stallTimeoutMs: parseOptionalSeconds("stall-timeout", parsed["stall-timeout"]),
      workspaceRoot,
      shutdownTimeoutMs: parseSeconds("shutdown-timeout", parsed["shutdown-timeout"]),
      idleTimeoutSeconds: parsePositiveInteger("idle-timeout", parsed["idle-timeout"], 255),
      reattachGraceMs: parseOptionalSeconds("reattach-grace", parsed["reattach-grace"]) ?? 0,
      runRetentionMs: parseSeconds("run-retention", parsed["run-retention"]),
      runRetentionBytes: parseByteSize("run-retention-bytes", parsed["run-retention-bytes"]),
      webConsole: parsed.console,
      leanCodex: parsed.lean,
      codexConfigOverrides: codexConfig.map(parseCodexOverride),
      engine,
      appServers: parsePositiveInteger("app-servers", parsed["app-servers"], 64),
      appServerRecycle: {
        maxThreads: parsePositiveInteger("app-server-max-threads", parsed["app-server-max-threads"]),
        maxRssBytes: parseByteSize("app-server-max-rss", parsed["app-server-max-rss"]),
      },
      approvalPolicy,
      approvalTimeoutMs: parseSeconds("approval-timeout", parsed["approval-timeout"]),
      webhookUrl: webhooks.webhookUrl,
      webhookSecret: webhooks.webhookSecret,
      webhookAllowedHosts: webhooks.webhookAllowedHosts,
      ...parseClusterFlags(parsed, env, machine),
    },
    warnings: [warning, auth.warning, ...tenants.warnings, webhooks.warning].filter((text): text is string => text !== undefined),
  };
}
