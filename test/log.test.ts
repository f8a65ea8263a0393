import { describe, expect, test } from "bun:test";
import { createLogger, formatJsonLine, formatLine, timestamps } from "../src/log";

const TIME = "2026-11-25T17:25:43.778Z";

/** Where a reader may end a line: every Unicode line terminator, and what a splitter like Python's splitlines adds. */
const BREAKS: Array<[name: string, char: string, escaped: string]> = [
  ["LF", "\n", "\\n"],
  ["CR", "\r", "\\r"],
  ["VT", "\u000b", "\\u000b"],
  ["FF", "\f", "\\f"],
  ["FS", "\u001c", "\\u001c"],
  ["ESC", "\u001b", "\\u001b"],
  ["DEL", "\u007f", "\\u007f"],
  ["NEL", "\u0085", "\\u0085"],
  ["C1 CSI", "\u009b", "\\u009b"],
  ["LINE SEPARATOR", "\u2028", "\\u2028"],
  ["PARAGRAPH SEPARATOR", "\u2029", "\\u2029"],
];

/** A line that no reader can split: one terminator, at its end. */
function expectOneLine(line: string): void {
  expect(line.endsWith("\n")).toBe(true);
  expect(line.slice(0, -1)).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
}

describe("formatLine escapes every line break, in the message and in field values", () => {
  test.each(BREAKS)("%s", (_name, char, escaped) => {
    const line = formatLine(TIME, "info", `GET /x${char}INFO fake`, { path: `/x${char}INFO fake`, plain: `a${char}b` });
    expectOneLine(line);
    expect(line).toBe(
      `2026-11-25T17:25:43.778Z INFO  GET /x${escaped}INFO fake path="/x${escaped}INFO fake" plain="a${escaped}b"\n`,
    );
  });

  test("printable text outside ASCII stays as it is", () => {
    expect(formatLine(TIME, "warn", "café ✓", { who: "Zoë", quoted: "a b" })).toBe(
      '2026-11-25T17:25:43.778Z WARN  café ✓ who=Zoë quoted="a b"\n',
    );
  });
});

describe("formatJsonLine escapes what JSON.stringify leaves raw, and reads back the same", () => {
  test.each(BREAKS)("%s", (_name, char) => {
    const fields = { path: `/x${char}y` };
    const line = formatJsonLine(TIME, "info", `m${char}n`, fields);
    expectOneLine(line);
    expect(JSON.parse(line)).toEqual({ time: TIME, level: "info", msg: `m${char}n`, path: `/x${char}y` });
  });
});

describe("timestamps", () => {
  test("each line gets its millisecond's ISO string, also when the clock goes back", () => {
    const clock = [1_764_091_543_778, 1_764_091_543_778, 1_764_091_543_779, 1_764_091_543_778];
    let calls = 0;
    const time = timestamps(() => clock[calls++] as number);
    const stamps = clock.map(() => time());
    expect(stamps).toEqual([
      "2025-11-25T17:25:43.778Z",
      "2025-11-25T17:25:43.778Z",
      "2025-11-25T17:25:43.779Z",
      "2025-11-25T17:25:43.778Z",
    ]);
  });
});

describe("Logger.access", () => {
  const entry = { method: "GET", path: "/runs/a\nINFO  forged", status: 404, durationMs: 0.349, requestId: "rid-1" };
  const NOW = Date.parse("2026-11-25T17:25:43.778Z");

  test.each([
    ["text", { tenant: "alice" }],
    ["text", {}],
    ["json", { tenant: "alice" }],
    ["json", {}],
  ] as const)("%s, %p: the line info writes for the same request, path escaped", (format, extra) => {
    const lines: string[] = [];
    const log = createLogger("info", (line) => void lines.push(line), () => NOW, format);
    log.access({ ...entry, ...extra });
    log.info("GET /runs/a\nINFO  forged", { status: 404, duration_ms: 0.3, request_id: "rid-1", ...extra });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe(lines[1] as string);
    expectOneLine(lines[0] as string);
  });

  test("writes nothing below info", () => {
    const lines: string[] = [];
    createLogger("warn", (line) => void lines.push(line)).access(entry);
    expect(lines).toEqual([]);
  });
});

describe("batchedStderr", () => {
  test("every line reaches stderr whole and in order: UTF-8, lines past the buffer, and lines written after a flush", async () => {
    const script = `
      import { batchedStderr } from "${import.meta.dir}/../src/log";
      const write = batchedStderr();
      write("first ✓\\n");
      write("x".repeat(300000) + "\\n");
      for (let i = 0; i < 5000; i++) write("line " + i + " café\\n");
      setTimeout(() => write("after the timer\\n"), 50);
    `;
    const child = Bun.spawn(["bun", "-e", script], { stderr: "pipe" });
    const text = await new Response(child.stderr).text();
    expect(await child.exited).toBe(0);
    const expected = ["first ✓", "x".repeat(300000), ...Array.from({ length: 5000 }, (_, i) => `line ${i} café`), "after the timer", ""].join("\n");
    expect(text).toBe(expected);
  });
});
