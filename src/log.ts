import { writeSync } from "node:fs";
import { LOG_LEVELS, type LogLevel } from "./config";

export type LogFields = Record<string, string | number | boolean | null | undefined>;
type LogMethod = (message: string, fields?: LogFields) => void;
export type Logger = Record<Exclude<LogLevel, "off">, LogMethod> & {
  level: LogLevel;
  enabled(level: Exclude<LogLevel, "off">): boolean;
};

/**
 * Characters that end a line for some reader of the log, or hide what follows: C0 controls (\n,
 * \r, \v, \f, ...), DEL, C1 controls (U+0085 NEL among them) and the Unicode line and paragraph
 * separators U+2028 and U+2029 (Python's splitlines, and editors, break lines at all of them).
 */
const UNSAFE = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029";
const PLAIN = new RegExp(`^[^\\s"=${UNSAFE}]+$`);
const CONTROL = new RegExp(`[${UNSAFE}]`, "g");
const LABELS: Record<string, string> = { error: "ERROR", warn: "WARN ", info: "INFO ", debug: "DEBUG", trace: "TRACE" };

/**
 * Escapes what would let a client forge log lines (Hono decodes %0A and %E2%80%A8 in paths), as
 * JSON writes it: JSON.stringify's own escapes for C0 (\n, \u0001), `\uXXXX` for the rest, which
 * JSON.stringify leaves as they are.
 */
function escapeControls(text: string): string {
  return text.replace(CONTROL, (char) => {
    const escaped = JSON.stringify(char).slice(1, -1);
    return escaped !== char ? escaped : `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}

export function formatLine(time: Date, level: string, message: string, fields: LogFields = {}): string {
  let line = `${time.toISOString()} ${LABELS[level] ?? level.toUpperCase().padEnd(5)} ${escapeControls(message)}`;
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined) continue;
    const text = typeof value === "string" ? value : String(value);
    line += ` ${key}=${PLAIN.test(text) ? text : escapeControls(JSON.stringify(text))}`;
  }
  return `${line}\n`;
}

export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * One JSON object a line, for log collectors: time, level, msg, then the same fields as text.
 * JSON.stringify leaves DEL, C1 controls and U+2028/U+2029 as they are; escaped, they read back
 * the same and no reader can split the line at them.
 */
export function formatJsonLine(time: Date, level: string, message: string, fields: LogFields = {}): string {
  return `${escapeControls(JSON.stringify({ time: time.toISOString(), level, msg: message, ...fields }))}\n`;
}

/** How long a log line may wait to be written with the lines that follow it. */
export const LOG_FLUSH_MS = 20;

/**
 * Writes to stderr in batches: lines queue up for at most LOG_FLUSH_MS and leave in one write, so
 * that a busy server makes one syscall per batch rather than one per request (measured: per-line
 * writes took a third of the server's CPU under load). Whatever is queued is written before the
 * process exits.
 */
export function batchedStderr(): (line: string) => void {
  let pending = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    timer = undefined;
    if (pending === "") return;
    const chunk = pending;
    pending = "";
    try {
      writeSync(2, chunk);
    } catch {}
  };
  process.on("exit", flush);
  return (line) => {
    pending += line;
    timer ??= setTimeout(flush, LOG_FLUSH_MS);
  };
}

/** Logs go to stderr so that stdout carries only the banner and what the user asked for. */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = batchedStderr(),
  now: () => Date = () => new Date(),
  format: LogFormat = "text",
): Logger {
  const toLine = format === "json" ? formatJsonLine : formatLine;
  const threshold = LOG_LEVELS.indexOf(level);
  const enabled = (at: Exclude<LogLevel, "off">) => level !== "off" && LOG_LEVELS.indexOf(at) <= threshold;
  const method =
    (at: Exclude<LogLevel, "off">): LogMethod =>
    (message, fields) => {
      if (enabled(at)) write(toLine(now(), at, message, fields));
    };
  return {
    level,
    enabled,
    error: method("error"),
    warn: method("warn"),
    info: method("info"),
    debug: method("debug"),
    trace: method("trace"),
  };
}
