export const LOG_LEVELS = ["off", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Everything the server needs to know, parsed once from flags and environment by the CLI. */
export type Config = {
  host: string;
  port: number;
  /** Run codex with sandbox `danger-full-access` and approval policy `never`. */
  bypassApprovalsAndSandbox: boolean;
  maxBodyBytes: number;
  logLevel: LogLevel;
  /** Where a turn runs when the request names no `work_dir`. */
  defaultWorkDir: string;
  /** An explicit codex binary (`--codex-path` or `CODEX_PATH`); otherwise it is looked up. */
  codexPath: string | undefined;
  /** The environment codex runs with (CODEX_HOME, OPENAI_API_KEY, PATH, ...). */
  codexEnv: Record<string, string>;
  heartbeatMs: number;
  /** A codex that has produced no event by then is treated as broken and stopped. */
  firstEventTimeoutMs: number;
};

export const DEFAULTS = {
  addr: "0.0.0.0:8081",
  maxBodyBytes: 1024 * 1024,
  heartbeatMs: 15_000,
  firstEventTimeoutMs: 60_000,
} as const;
