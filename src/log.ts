import { writeSync } from "node:fs";
import { LOG_LEVELS, type LogLevel } from "./config";

export type LogFields = Record<string, string | number | boolean | null | undefined>;
type LogMethod = (message: string, fields?: LogFields) => void;
/** What the access log line of a request says (at info). */
export type AccessEntry = {
  method: string;
  path: string;
  status: number;
  durationMs: number;
  /** Plain by construction: a UUID, or a client's id that REQUEST_ID allowed. */
  requestId: string;
  /** Plain by construction: a tokens file's tenant name. */
  tenant?: string | undefined;
};

export type Logger = Record<Exclude<LogLevel, "off">, LogMethod> & {
  level: LogLevel;
  enabled(level: Exclude<LogLevel, "off">): boolean;
  /**
   * The access log line, one per request: the same line `info` writes, built without the
   * general formatter's checks of what needs none (a request id, a tenant name, numbers). Does
   * nothing below info.
   */
  access(entry: AccessEntry): void;
  /**
   * The access log line of requests that share their method, path and status, with its fixed
   * part escaped and joined once: for /health's fast path, where building the line is a good part
   * of what a request costs. Does nothing below info.
   */
  accessLineFor(method: string, path: string, status: number): (durationMs: number, requestId: string) => void;
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
  if (isPlainAscii(text, false)) return text;
  return text.replace(CONTROL, (char) => {
    const escaped = JSON.stringify(char).slice(1, -1);
    return escaped !== char ? escaped : `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}

/**
 * Whether `text` is printable ASCII (with `bare`: no space, `"` or `=` either), told by a loop over
 * its characters: the common case, decided faster than by the regular expressions, which run only
 * on the text it says no to.
 */
function isPlainAscii(text: string, bare: boolean): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e) return false;
    if (bare && (code === 0x20 || code === 0x22 || code === 0x3d)) return false;
  }
  return true;
}

export function formatLine(time: string, level: string, message: string, fields: LogFields = {}): string {
  let line = `${time} ${LABELS[level] ?? level.toUpperCase().padEnd(5)} ${escapeControls(message)}`;
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined) continue;
    if (typeof value !== "string") line += ` ${key}=${value}`;
    else if (value !== "" && (isPlainAscii(value, true) || PLAIN.test(value))) line += ` ${key}=${value}`;
    else line += ` ${key}=${escapeControls(JSON.stringify(value))}`;
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
export function formatJsonLine(time: string, level: string, message: string, fields: LogFields = {}): string {
  return `${escapeControls(JSON.stringify({ time, level, msg: message, ...fields }))}\n`;
}

/** How long a log line may wait to be written with the lines that follow it. */
export const LOG_FLUSH_MS = 20;

/** Where log lines go: a function taking whole lines, and maybe a way to take access lines in parts. */
export type LogSink = ((line: string) => void) & {
  /**
   * An access line given as its parts, built only when its batch is written: see batchedStderr.
   * `head` is what follows the time up to the duration (accessHead).
   */
  access?(epochMs: number, head: string, durationMs: number, requestId: string, tenant: string | undefined): void;
};

/** The text access line: what follows the time up to the duration, then the rest. */
function accessHead(method: string, path: string, status: number): string {
  return ` INFO  ${escapeControls(method)} ${escapeControls(path)} status=${status} duration_ms=`;
}

function accessLine(time: string, head: string, durationMs: number, requestId: string, tenant: string | undefined): string {
  return `${time}${head}${tenths(durationMs)} request_id=${requestId}${tenant === undefined ? "" : ` tenant=${tenant}`}\n`;
}

const tenths = (ms: number) => Math.round(ms * 10) / 10;

/**
 * Writes to stderr in batches: lines queue up for at most LOG_FLUSH_MS and leave in one write, so
 * that a busy server makes one syscall per batch rather than one per request (measured: per-line
 * writes took a third of the server's CPU under load). Access lines queue as their parts and are
 * built with their batch, in one loop: built and copied one by one between requests, they cost
 * /health 0.6 µs more a request (/health's fast path alone, side by side with wrk: 7.64 against
 * 7.04 µs, 0.766 against 0.809 of bare Bun.serve). Whatever is queued is written before the
 * process exits.
 */
export function batchedStderr(): LogSink {
  // A line is one string; an access line is five slots, starting with its time (a number). The
  // first `length` slots are queued: the array keeps its size from batch to batch rather than
  // growing again for each (measured: half of what queueing and writing an access line cost).
  const queue: Array<string | number | undefined> = [];
  let length = 0;
  // About how many bytes the queue will write, so that a flood is written before 20 ms have passed.
  let queued = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const iso = timestamps();
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (length === 0) return;
    let text = "";
    for (let i = 0; i < length; ) {
      const first = queue[i] as string | number;
      if (typeof first === "string") {
        text += first;
        i += 1;
      } else {
        text += accessLine(iso(first), queue[i + 1] as string, queue[i + 2] as number, queue[i + 3] as string, queue[i + 4] as string | undefined);
        i += 5;
      }
    }
    queue.fill(undefined, 0, length);
    length = 0;
    queued = 0;
    try {
      writeSync(2, text);
    } catch {}
  };
  process.on("exit", flush);
  const queueUp = (bytes: number) => {
    queued += bytes;
    if (queued > LOG_BATCH_BYTES) flush();
    else timer ??= setTimeout(flush, LOG_FLUSH_MS);
  };
  const sink: LogSink = (line) => {
    queue[length++] = line;
    queueUp(line.length);
  };
  sink.access = (epochMs, head, durationMs, requestId, tenant) => {
    queue[length] = epochMs;
    queue[length + 1] = head;
    queue[length + 2] = durationMs;
    queue[length + 3] = requestId;
    queue[length + 4] = tenant;
    length += 5;
    queueUp(head.length + requestId.length + 48);
  };
  return sink;
}

/** About what a batch holds before it is written early, before LOG_FLUSH_MS has passed. */
const LOG_BATCH_BYTES = 256 * 1024;

/**
 * The time of a log line (ISO 8601, UTC, milliseconds) from its epoch milliseconds. Lines of the
 * same millisecond share one string: `toISOString` (0.12 µs here) costs about as much as
 * formatting the rest of an access log line.
 */
export function timestamps(): (epochMs: number) => string {
  let lastMs = Number.NaN;
  let last = "";
  return (ms) => {
    if (ms !== lastMs) {
      lastMs = ms;
      last = new Date(ms).toISOString();
    }
    return last;
  };
}

/** Logs go to stderr so that stdout carries only the banner and what the user asked for. */
export function createLogger(
  level: LogLevel,
  write: LogSink = batchedStderr(),
  now: () => number = Date.now,
  format: LogFormat = "text",
): Logger {
  const toLine = format === "json" ? formatJsonLine : formatLine;
  const iso = timestamps();
  const time = () => iso(now());
  const threshold = LOG_LEVELS.indexOf(level);
  const enabled = (at: Exclude<LogLevel, "off">) => level !== "off" && LOG_LEVELS.indexOf(at) <= threshold;
  // The level is fixed: each method is decided once, not on every call.
  const method = (at: Exclude<LogLevel, "off">): LogMethod =>
    enabled(at) ? (message, fields) => write(toLine(time(), at, message, fields)) : () => {};
  const info = method("info");
  // Built now, or handed to the sink in parts to be built with its batch.
  const writeAccess =
    write.access ??
    ((epochMs: number, head: string, durationMs: number, requestId: string, tenant: string | undefined) =>
      write(accessLine(iso(epochMs), head, durationMs, requestId, tenant)));
  const access = (entry: AccessEntry): void => {
    if (format === "json") {
      const fields = { status: entry.status, duration_ms: tenths(entry.durationMs), request_id: entry.requestId, tenant: entry.tenant };
      return info(`${entry.method} ${entry.path}`, fields);
    }
    writeAccess(now(), accessHead(entry.method, entry.path, entry.status), entry.durationMs, entry.requestId, entry.tenant);
  };
  const accessLineFor = (method: string, path: string, status: number) => {
    if (format === "json") return (durationMs: number, requestId: string) => access({ method, path, status, durationMs, requestId });
    const head = accessHead(method, path, status);
    return (durationMs: number, requestId: string) => writeAccess(now(), head, durationMs, requestId, undefined);
  };
  return {
    level,
    enabled,
    access: enabled("info") ? access : () => {},
    accessLineFor: enabled("info") ? accessLineFor : () => () => {},
    error: method("error"),
    warn: method("warn"),
    info,
    debug: method("debug"),
    trace: method("trace"),
  };
}
