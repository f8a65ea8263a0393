import { describe, expect, test } from "bun:test";
import { type Block, parseInline, parseMarkdown, safeHref } from "../src/console/markdown";
import { followRun, type SseMessage, StreamLost, sseParser } from "../src/console/sse";
import { relativeTime, threadTitle, turnsBesideRun } from "../src/console/threads";

describe("sseParser", () => {
  const cases: Array<[string, string[], SseMessage[]]> = [
    ["one event", ["event: done\ndata: {}\nid: 3\n\n"], [{ id: "3", event: "done", data: "{}" }]],
    ["no event name is `message`", ["data: x\n\n"], [{ id: undefined, event: "message", data: "x" }]],
    ["multi-line data joins with LF", ["data: a\ndata: b\n\n"], [{ id: undefined, event: "message", data: "a\nb" }]],
    ["heartbeat comments are skipped", [": keep-alive\n\n", "data: x\n\n"], [{ id: undefined, event: "message", data: "x" }]],
    ["split anywhere", ["ev", "ent: a\nda", "ta: 1\n", "\n"], [{ id: undefined, event: "a", data: "1" }]],
    ["CRLF split between chunks", ["data: a\r", "\ndata: b\r\n\r\n"], [{ id: undefined, event: "message", data: "a\nb" }]],
    // A trailing CR could still become CRLF, so "b" waits for the next chunk.
    ["bare CR line ends", ["data: a\r\r", "data: b\r\r"], [{ id: undefined, event: "message", data: "a" }]],
    ["only one space after the colon is dropped", ["data:  two\n\n"], [{ id: undefined, event: "message", data: " two" }]],
    ["the id carries over to later events", ["id: 7\ndata: a\n\ndata: b\n\n"], [
      { id: "7", event: "message", data: "a" },
      { id: "7", event: "message", data: "b" },
    ]],
    ["an event name without data dispatches nothing", ["event: x\n\ndata: y\n\n"], [{ id: undefined, event: "message", data: "y" }]],
    ["an unfinished event waits", ["data: a\n"], []],
  ];
  for (const [name, chunks, expected] of cases) {
    test(name, () => {
      const parse = sseParser();
      expect(chunks.flatMap((chunk) => parse(chunk))).toEqual(expected);
    });
  }
});

describe("followRun", () => {
  const frame = (id: number, event = "item.completed") => `id: ${id}\nevent: ${event}\ndata: ${id}\n\n`;
  /** A response whose body sends `text`, then breaks (or ends, with `breaks` false). */
  const stream = (text: string, breaks = true) => {
    let sent = false;
    return new Response(
      new ReadableStream<Uint8Array>({
        // Errors only once the text has been read: error() would drop what is still queued.
        pull(controller) {
          if (!sent) {
            sent = true;
            controller.enqueue(new TextEncoder().encode(text));
          } else if (breaks) controller.error(new TypeError("network connection lost"));
          else controller.close();
        },
      }),
    );
  };
  const ids = async (messages: AsyncIterable<SseMessage>) => {
    const seen: string[] = [];
    for await (const message of messages) seen.push(`${message.event}:${message.id}`);
    return seen;
  };

  test("ends with done, without asking again", async () => {
    const reopened: number[] = [];
    const reopen = async (lastId: number) => {
      reopened.push(lastId);
      return stream("");
    };
    expect(await ids(followRun(stream(frame(1) + frame(2, "done"), false), { reopen, reconnects: 5 }))).toEqual(["item.completed:1", "done:2"]);
    expect(reopened).toEqual([]);
  });

  test("after a break it asks again from the last id, and skips what it has already seen", async () => {
    const reopened: number[] = [];
    const answers = [stream(frame(2) + frame(3)), stream(frame(3) + frame(4) + frame(5, "done"), false)];
    const reopen = async (lastId: number) => {
      reopened.push(lastId);
      return answers.shift() as Response;
    };
    expect(await ids(followRun(stream(frame(1)), { reopen, reconnects: 5 }))).toEqual([
      "item.completed:1",
      "item.completed:2",
      "item.completed:3",
      "item.completed:4",
      "done:5",
    ]);
    expect(reopened).toEqual([1, 3]);
  });

  test("a stream that ends without done counts as a break too", async () => {
    const reopen = async () => stream(frame(2, "done"), false);
    expect(await ids(followRun(stream(frame(1), false), { reopen, reconnects: 1 }))).toEqual(["item.completed:1", "done:2"]);
  });

  test("more breaks in a row than allowed: StreamLost; one that brings a message starts the count again", async () => {
    let next = 1;
    // Each answer brings one new event and breaks: never two breaks in a row, however many.
    const progressing = async () => stream(frame(++next));
    const seen: string[] = [];
    const run = followRun(stream(frame(1)), { reopen: progressing, reconnects: 1 });
    for await (const message of run) {
      seen.push(message.id ?? "");
      if (seen.length === 8) break;
    }
    expect(seen).toEqual(["1", "2", "3", "4", "5", "6", "7", "8"]);

    let asked = 0;
    const empty = async () => {
      asked++;
      return stream("");
    };
    await expect(ids(followRun(stream(frame(1)), { reopen: empty, reconnects: 2 }))).rejects.toBeInstanceOf(StreamLost);
    expect(asked).toBe(2);
  });

  test("a break after the caller stopped is its error, not one to reattach after", async () => {
    let asked = 0;
    const reopen = async () => {
      asked++;
      return stream("");
    };
    await expect(ids(followRun(stream(frame(1)), { reopen, reconnects: 5, stopped: () => true }))).rejects.toThrow("network connection lost");
    expect(asked).toBe(0);
  });
});

describe("parseMarkdown", () => {
  const text = (value: string) => ({ type: "text" as const, text: value });
  const cases: Array<[string, string, Block[]]> = [
    ["paragraphs split on blank lines, lines join", "one\ntwo\n\nthree", [
      { type: "paragraph", children: [text("one\ntwo")] },
      { type: "paragraph", children: [text("three")] },
    ]],
    ["headings", "## Title ##", [{ type: "heading", level: 2, children: [text("Title")] }]],
    ["fenced code keeps its text verbatim", "```ts\nconst a = <b>;\n  x\n```\nafter", [
      { type: "code", lang: "ts", text: "const a = <b>;\n  x" },
      { type: "paragraph", children: [text("after")] },
    ]],
    ["an unclosed fence runs to the end", "~~~\nx", [{ type: "code", lang: "", text: "x" }]],
    ["bullet list", "- a\n* b\n+ c", [{ type: "list", ordered: false, items: [[text("a")], [text("b")], [text("c")]] }]],
    ["numbered list", "1. a\n2) b", [{ type: "list", ordered: true, items: [[text("a")], [text("b")]] }]],
    ["quote", "> a\n> b", [{ type: "quote", children: [text("a\nb")] }]],
    ["HTML stays text", "<img src=x onerror=alert(1)>", [{ type: "paragraph", children: [text("<img src=x onerror=alert(1)>")] }]],
    ["a paragraph ends where a list starts", "intro\n- a", [
      { type: "paragraph", children: [text("intro")] },
      { type: "list", ordered: false, items: [[text("a")]] },
    ]],
  ];
  for (const [name, source, expected] of cases) {
    test(name, () => expect(parseMarkdown(source)).toEqual(expected));
  }
});

describe("parseInline", () => {
  const cases: Array<[string, string, unknown]> = [
    ["code", "run `ls -la` now", [{ type: "text", text: "run " }, { type: "code", text: "ls -la" }, { type: "text", text: " now" }]],
    ["code hides emphasis", "`**x**`", [{ type: "code", text: "**x**" }]],
    ["strong and em", "**b** and *i*", [
      { type: "strong", children: [{ type: "text", text: "b" }] },
      { type: "text", text: " and " },
      { type: "em", children: [{ type: "text", text: "i" }] },
    ]],
    ["snake_case is not emphasis", "a_b_c", [{ type: "text", text: "a_b_c" }]],
    ["a lone star is text", "2 * 3", [{ type: "text", text: "2 * 3" }]],
    ["a closing mark beyond 500 characters is not looked for", `*${"a".repeat(600)}*`, [{ type: "text", text: `*${"a".repeat(600)}*` }]],
    ["within 500 it is", `*${"a".repeat(400)}*`, [{ type: "em", children: [{ type: "text", text: "a".repeat(400) }] }]],
    ["intraword __ is not strong either", "a__b__c", [{ type: "text", text: "a__b__c" }]],
    ["http link", "[docs](https://example.com/a)", [{ type: "link", href: "https://example.com/a", children: [{ type: "text", text: "docs" }] }]],
    ["javascript: link stays text", "[x](javascript:alert(1))", [{ type: "text", text: "[x](javascript:alert(1))" }]],
  ];
  for (const [name, source, expected] of cases) {
    test(name, () => expect(parseInline(source)).toEqual(expected as ReturnType<typeof parseInline>));
  }
});

describe("safeHref", () => {
  const cases: Array<[string, string | undefined]> = [
    ["https://a.example/x?y=1", "https://a.example/x?y=1"],
    ["http://a.example", "http://a.example/"],
    ["mailto:a@b.example", "mailto:a@b.example"],
    ["javascript:alert(1)", undefined],
    ["JaVaScRiPt:alert(1)", undefined],
    ["data:text/html,<b>", undefined],
    ["/relative", undefined],
  ];
  for (const [href, expected] of cases) {
    test(`${href} → ${expected ?? "refused"}`, () => expect(safeHref(href)).toBe(expected));
  }
});

describe("relativeTime", () => {
  // Local time, as the page shows it: a Wednesday afternoon.
  const now = new Date(2026, 10, 25, 15, 30, 0);
  const at = (...parts: [number, number, number, number?, number?, number?]) => new Date(...parts);
  const cases: Array<[string, Date, string]> = [
    ["this second", now, "just now"],
    ["59 s ago", at(2026, 10, 25, 15, 29, 1), "just now"],
    ["a clock ahead of this one", at(2026, 10, 25, 15, 35), "just now"],
    ["60 s ago", at(2026, 10, 25, 15, 29, 0), "1 min ago"],
    ["59 min 59 s ago", at(2026, 10, 25, 14, 30, 1), "59 min ago"],
    ["an hour ago", at(2026, 10, 25, 14, 30), "1 h ago"],
    ["before midnight, within a day", at(2026, 10, 24, 23, 0), "16 h ago"],
    ["23 h 59 min ago", at(2026, 10, 24, 15, 31), "23 h ago"],
    ["a day ago is yesterday", at(2026, 10, 24, 15, 30), "yesterday"],
    ["yesterday just after midnight", at(2026, 10, 24, 0, 5), "yesterday"],
    ["the day before yesterday", at(2026, 10, 23, 23, 59), "2 days ago"],
    ["six days ago", at(2026, 10, 19, 9, 0), "6 days ago"],
    ["a week ago: the date", at(2026, 10, 18, 9, 0), "18 Nov"],
    ["earlier this year", at(2026, 0, 2, 9, 0), "2 Jan"],
    ["another year: with the year", at(2025, 11, 31, 9, 0), "31 Dec 2025"],
  ];
  for (const [name, then, expected] of cases) {
    test(`${name} → ${expected}`, () => expect(relativeTime(then, now)).toBe(expected));
  }
});

describe("threadTitle", () => {
  const cases: Array<[string, string | null, string, string]> = [
    ["the name", "Deploy notes", "run echo one", "Deploy notes"],
    ["the name, trimmed", "  Deploy notes ", "run echo one", "Deploy notes"],
    ["no name: the preview", null, "run echo one", "run echo one"],
    ["a blank name: the preview", "   ", "run echo one", "run echo one"],
    ["the preview's first line", null, "\n  fix the build\nthen run the tests", "fix the build"],
    ["nothing at all", null, " \n ", "(no message)"],
  ];
  for (const [name, threadName, preview, expected] of cases) {
    test(name, () => expect(threadTitle({ name: threadName, preview })).toBe(expected));
  }
});

describe("turnsBesideRun", () => {
  const turn = (input: string, status: string) => ({ input, status });
  const done = [turn("say first", "completed"), turn("count", "failed")];
  const cases: Array<[string, Array<{ input: string; status: string }>, { message: string; running: boolean }, string[]]> = [
    ["running, stored as in progress: left out", [...done, turn("sleep", "in_progress")], { message: "sleep", running: true }, ["say first", "count"]],
    ["running, not stored yet: every turn stays", done, { message: "count", running: true }, ["say first", "count"]],
    ["ended after the history was read: left out", [...done, turn("sleep", "in_progress")], { message: "sleep", running: false }, ["say first", "count"]],
    ["ended: the newest turn with its message is left out", done, { message: "count", running: false }, ["say first"]],
    ["ended without reaching codex: every turn stays", done, { message: "never stored", running: false }, ["say first", "count"]],
    ["only the newest turn is ever left out", [turn("same", "completed"), turn("other", "completed")], { message: "same", running: false }, ["same", "other"]],
    ["no turns", [], { message: "sleep", running: true }, []],
  ];
  for (const [name, turns, run, expected] of cases) {
    test(name, () => expect(turnsBesideRun(turns, run).map((t) => t.input)).toEqual(expected));
  }
});
