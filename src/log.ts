import { LOG_LEVELS, type LogLevel } from "./config";

export type LogFields = Record<string, string | number | boolean | null | undefined>;
type LogMethod = (message: string, fields?: LogFields) => void;
export type Logger = Record<Exclude<LogLevel, "off">, LogMethod> & {
  level: LogLevel;
  enabled(level: Exclude<LogLevel, "off">): boolean;
};

function formatValue(value: string | number | boolean | null): string {
  const text = String(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

/** Control characters would let a client forge log lines (Hono decodes %0A in paths). */
function escapeControls(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (char) => JSON.stringify(char).slice(1, -1));
}

export function formatLine(time: Date, level: string, message: string, fields: LogFields = {}): string {
  const pairs = Object.entries(fields)
    .filter((entry): entry is [string, string | number | boolean | null] => entry[1] !== undefined)
    .map(([key, value]) => `${key}=${formatValue(value)}`);
  return [time.toISOString(), level.toUpperCase().padEnd(5), escapeControls(message), ...pairs].join(" ") + "\n";
}

/** Logs go to stderr so that stdout carries only the banner and what the user asked for. */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => void process.stderr.write(line),
  now: () => Date = () => new Date(),
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const enabled = (at: Exclude<LogLevel, "off">) => level !== "off" && LOG_LEVELS.indexOf(at) <= threshold;
  const method =
    (at: Exclude<LogLevel, "off">): LogMethod =>
    (message, fields) => {
      if (enabled(at)) write(formatLine(now(), at, message, fields));
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
