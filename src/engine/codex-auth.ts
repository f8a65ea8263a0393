import { codexHome } from "./codex-home";
import { isTable, readUserCodexConfig, type Table } from "./lean-profile";

/** Whether codex can authenticate to its model provider: `unknown` when the server cannot tell. */
export const CODEX_LOGIN_STATES = ["ok", "missing", "unknown"] as const;
export type CodexLoginState = (typeof CODEX_LOGIN_STATES)[number];

/** The verdict, and one sentence for the operator: what was found, or what to do. */
export type CodexLogin = { state: CodexLoginState; detail: string };

export type LoginCheckOptions = {
  codexPath: string;
  /** codex's environment: CODEX_HOME, the API key variables, a provider's `env_key`. */
  env: Record<string, string>;
  /** `--codex-config` overrides, which may choose the model provider. */
  configOverrides: readonly string[];
  /** How long `codex login status` may take before the answer is `unknown`. */
  timeoutMs: number;
};

/** How long the start-up check may take: `codex login status` answers in well under 100 ms. */
export const LOGIN_CHECK_TIMEOUT_MS = 3_000;

/** The variables codex takes an OpenAI API key from (the server passes OPENAI_API_KEY on as CODEX_API_KEY). */
const API_KEY_VARIABLES = ["OPENAI_API_KEY", "CODEX_API_KEY"] as const;

function unquote(value: string): string {
  return value.replace(/^(["'])(.*)\1$/, "$2");
}

/** The model provider codex uses: the last `--codex-config model_provider=...`, else config.toml's, else `openai`. */
export function modelProvider(userConfig: Table, configOverrides: readonly string[]): string {
  const override = configOverrides.findLast((entry) => entry.startsWith("model_provider="));
  if (override !== undefined) return unquote(override.slice("model_provider=".length));
  return typeof userConfig.model_provider === "string" ? userConfig.model_provider : "openai";
}

/**
 * What the configuration alone says, without asking codex: a provider of config.toml that names
 * its key variable (`env_key`) is authenticated exactly when that variable is set, whatever
 * `codex login` stored; one that names none and does not ask for OpenAI's credentials
 * (`requires_openai_auth`) needs none. For OpenAI's credentials an API key variable is enough;
 * otherwise undefined: only `codex login status` can tell.
 */
export function loginFromConfig(userConfig: Table, configOverrides: readonly string[], env: Record<string, string>): CodexLogin | undefined {
  const provider = modelProvider(userConfig, configOverrides);
  const providers = isTable(userConfig.model_providers) ? userConfig.model_providers : {};
  const table = provider === "openai" ? undefined : providers[provider];
  if (isTable(table) && typeof table.env_key === "string" && table.env_key !== "") {
    const variable = table.env_key;
    return env[variable]
      ? { state: "ok", detail: `model provider "${provider}" takes its key from ${variable}, which is set` }
      : { state: "missing", detail: `model provider "${provider}" takes its key from ${variable}, which is not set in the server's environment: set it` };
  }
  if (provider !== "openai" && !(isTable(table) && table.requires_openai_auth === true)) {
    return { state: "ok", detail: `model provider "${provider}" names no key variable (env_key)` };
  }
  const variable = API_KEY_VARIABLES.find((name) => env[name]);
  if (variable) return { state: "ok", detail: `an API key is set (${variable})` };
  return undefined;
}

/**
 * Whether codex can authenticate: from the configuration where it says (see `loginFromConfig`),
 * else from `codex login status` (exit 0: logged in; "Not logged in": missing), within
 * `timeoutMs`. Anything else, a broken config.toml or a codex that does not answer, is `unknown`
 * with what codex said. Never throws.
 */
export async function checkCodexLogin(options: LoginCheckOptions): Promise<CodexLogin> {
  const known = loginFromConfig(readUserCodexConfig(options.env), options.configOverrides, options.env);
  if (known) return known;
  const home = codexHome(options.env);
  const missing: CodexLogin = {
    state: "missing",
    detail: `codex is not logged in (CODEX_HOME ${home}) and no API key is set: run \`codex login\` with that CODEX_HOME, or set OPENAI_API_KEY`,
  };
  let child: Bun.Subprocess<"ignore", "pipe", "pipe">;
  try {
    child = Bun.spawn([options.codexPath, "login", "status"], { env: options.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (err) {
    return { state: "unknown", detail: `\`codex login status\` could not be started: ${(err as Error).message}` };
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
  });
  const answered = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  const outcome = await Promise.race([answered, timedOut]).finally(() => clearTimeout(timer));
  if (outcome === "timeout") {
    child.kill("SIGKILL");
    return { state: "unknown", detail: `\`codex login status\` did not answer within ${options.timeoutMs / 1000} s` };
  }
  const [stdout, stderr, exitCode] = outcome;
  // codex prints warnings (about PATH aliases, say) before its answer.
  const lines = `${stdout}\n${stderr}`.split("\n").map((line) => line.trim()).filter(Boolean);
  if (exitCode === 0) {
    return { state: "ok", detail: lines.find((line) => line.startsWith("Logged in")) ?? "codex is logged in" };
  }
  if (lines.includes("Not logged in")) return missing;
  return { state: "unknown", detail: `\`codex login status\` exited with ${exitCode}: ${lines.at(-1) ?? "no output"}` };
}

/**
 * The login state for `/ready`: the start-up check, checked again (at most every `recheckMs`)
 * while it is not `ok`, so that a `codex login` after start-up counts without a restart.
 */
export class CodexLoginStatus {
  /** The start-up check's answer. */
  readonly startup: Promise<CodexLogin>;
  private latest: Promise<CodexLogin>;
  private checkedAt: number;

  constructor(
    private readonly check: () => Promise<CodexLogin>,
    private readonly recheckMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.startup = check();
    this.latest = this.startup;
    this.checkedAt = now();
  }

  async current(): Promise<CodexLogin> {
    const latest = await this.latest;
    if (latest.state === "ok" || this.now() - this.checkedAt < this.recheckMs) return latest;
    this.checkedAt = this.now();
    this.latest = this.check();
    return this.latest;
  }
}

/**
 * A turn's failure as `done` reports it: when the model provider refused codex's credentials
 * (HTTP 401) or codex lacks its provider's key variable, it says so and what to do, then what
 * codex said. Any other failure is codex's message unchanged.
 */
export function describeTurnFailure(message: string): string {
  if (/\b401 Unauthorized\b/.test(message)) {
    return `the model provider refused codex's credentials (401): run \`codex login\` with the server's CODEX_HOME, or set OPENAI_API_KEY; codex said: ${message}`;
  }
  if (message.startsWith("Missing environment variable: ")) {
    return `codex has no credentials for its model provider: set the variable in the server's environment; codex said: ${message}`;
  }
  return message;
}
