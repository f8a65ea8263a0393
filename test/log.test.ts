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
    const time = timestamps();
    const stamps = clock.map((ms) => time(ms));
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
    createLogger("warn", (line) => void lines.push(line)).accessLineFor("GET", "/health", 200)(0.1, "rid-1");
    expect(lines).toEqual([]);
  });

  test.each(["text", "json"] as const)("%s: accessLineFor writes the line access writes", (format) => {
    const lines: string[] = [];
    const log = createLogger("info", (line) => void lines.push(line), () => NOW, format);
    log.accessLineFor("GET", "/health\nforged", 200)(0.26, "rid-2");
    log.access({ method: "GET", path: "/health\nforged", status: 200, durationMs: 0.26, requestId: "rid-2" });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe(lines[1] as string);
    if (format === "text") expect(lines[0]).toBe("2026-11-25T17:25:43.778Z INFO  GET /health\\nforged status=200 duration_ms=0.3 request_id=rid-2\n");
  });
});

describe("batchedStderr", () => {
  test("access lines queued as parts come out as createLogger builds them, in order with the other lines", async () => {
    // Two loggers on fixed clocks: one writes through batchedStderr, the other's lines are the expected text.
    const script = `
      import { batchedStderr, createLogger } from "${import.meta.dir}/../src/log";
      let clock = Date.parse("2026-11-25T17:25:43.778Z");
      const log = createLogger("info", batchedStderr(), () => clock);
      const health = log.accessLineFor("GET", "/health", 200);
      log.info("starting", { port: 1 });
      health(0.04, "rid-a");
      clock += 1;
      log.access({ method: "POST", path: "/messages", status: 200, durationMs: 12.345, requestId: "rid-b", tenant: "alice" });
      log.warn("café ✓");
      health(1.26, "rid-c");
      setTimeout(() => { clock += 5; health(0, "rid-d"); }, 50);
    `;
    const child = Bun.spawn(["bun", "-e", script], { stderr: "pipe" });
    const text = await new Response(child.stderr).text();
    expect(await child.exited).toBe(0);
    expect(text).toBe(
      [
        "2026-11-25T17:25:43.778Z INFO  starting port=1",
        "2026-11-25T17:25:43.778Z INFO  GET /health status=200 duration_ms=0 request_id=rid-a",
        "2026-11-25T17:25:43.779Z INFO  POST /messages status=200 duration_ms=12.3 request_id=rid-b tenant=alice",
        "2026-11-25T17:25:43.779Z WARN  café ✓",
        "2026-11-25T17:25:43.779Z INFO  GET /health status=200 duration_ms=1.3 request_id=rid-c",
        "2026-11-25T17:25:43.784Z INFO  GET /health status=200 duration_ms=0 request_id=rid-d",
        "",
      ].join("\n"),
    );
  });

  test("every line reaches stderr whole and in order: UTF-8, access lines, more than a batch holds, and lines written after a flush", async () => {
    const script = `
      import { batchedStderr } from "${import.meta.dir}/../src/log";
      const write = batchedStderr();
      write("first ✓\\n");
      write("x".repeat(300000) + "\\n");
      for (let i = 0; i < 5000; i++) {
        write("line " + i + " café\\n");
        write.access(i, " INFO  GET /health status=200 duration_ms=", 0.12, "id-" + i, undefined);
      }
      setTimeout(() => write("after the timer\\n"), 50);
    `;
    const child = Bun.spawn(["bun", "-e", script], { stderr: "pipe" });
    const text = await new Response(child.stderr).text();
    expect(await child.exited).toBe(0);
    const lines = Array.from({ length: 5000 }, (_, i) => [
      `line ${i} café`,
      `${new Date(i).toISOString()} INFO  GET /health status=200 duration_ms=0.1 request_id=id-${i}`,
    ]);
    const expected = ["first ✓", "x".repeat(300000), ...lines.flat(), "after the timer", ""].join("\n");
    expect(text).toBe(expected);
  });
});
