/**
 * README.md and docs/*.md: links and anchors that resolve, tables that render, the flag table as
 * --help has it, the scripted model's prompts as it understands them. (Their examples are run by
 * test/docs-examples.test.ts.)
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { CONFIGURATION_MD, withFlagTable } from "../scripts/docs-flags";
import { args } from "../src/flags";
import { docFiles, REPO } from "./fixtures/doc-examples";

const read = (file: string) => readFileSync(join(REPO, file), "utf8");

/** The lines of a document outside fenced code blocks, with their line numbers. */
function proseLines(text: string): Array<[number, string]> {
  const lines: Array<[number, string]> = [];
  let fenced = false;
  text.split("\n").forEach((line, i) => {
    if (/^\s*```/.test(line)) fenced = !fenced;
    else if (!fenced) lines.push([i + 1, line]);
  });
  return lines;
}

/** The anchor GitHub gives a heading (github-slugger): lower case, punctuation dropped, spaces to hyphens. */
export function githubSlug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** Every anchor of a document: its headings' slugs, a repeated one numbered as GitHub does. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  for (const [, line] of proseLines(text)) {
    const heading = /^#{1,6} (.+)$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const slug = githubSlug(heading.replace(/`/g, "").replace(/\[([^\]]*)\]\([^)]*\)/g, "$1"));
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    found.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return found;
}

test.each([
  ["Busy threads: `on_busy`", "busy-threads-on_busy"],
  ["codex's sandbox in a container", "codexs-sandbox-in-a-container"],
  ["Why `/health` stays below 0.90 of bare `Bun.serve`", "why-health-stays-below-090-of-bare-bunserve"],
  ["A turn never ends: Reconnecting... waiting for network", "a-turn-never-ends-reconnecting-waiting-for-network"],
  ["403 forbidden_host", "403-forbidden_host"],
])("GitHub's anchor for %p is %p", (heading, slug) => {
  expect(githubSlug(heading.replace(/`/g, ""))).toBe(slug);
});

describe.each(docFiles())("%s", (file) => {
  const text = read(file);

  test("every relative link and #anchor resolves", () => {
    const broken: string[] = [];
    for (const [at, line] of proseLines(text)) {
      // Inline code is not a link.
      for (const match of line.replace(/`[^`]*`/g, "").matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)) {
        const target = match[1] as string;
        if (/^[a-z]+:/.test(target)) continue;
        const [path = "", anchor] = target.split("#");
        const resolved = path === "" ? file : normalize(join(dirname(file), path));
        if (!existsSync(join(REPO, resolved))) {
          broken.push(`${file}:${at}: ${target} (no ${resolved})`);
          continue;
        }
        if (anchor !== undefined && !anchors(read(resolved)).has(anchor)) broken.push(`${file}:${at}: ${target} (no #${anchor} in ${resolved})`);
      }
    }
    expect(broken).toEqual([]);
  });

  test("tables: no blank line inside one, and every row as many cells as its header", () => {
    const problems: string[] = [];
    const lines = proseLines(text);
    const cells = (row: string) => row.trim().replace(/^\||\|$/g, "").split(/(?<!\\)\|/).length;
    lines.forEach(([at, line], i) => {
      if (!line.trimStart().startsWith("|")) return;
      const previous = lines[i - 1]?.[1] ?? "";
      const next = lines[i + 1]?.[1] ?? "";
      const startsTable = !previous.trimStart().startsWith("|");
      if (startsTable && !/^\s*\|(\s*:?-+:?\s*\|)+\s*$/.test(next)) {
        problems.push(`${file}:${at}: a row outside a table (a blank line above it ends the table)`);
      }
      if (!startsTable) {
        let header = i;
        while (lines[header - 1]?.[1].trimStart().startsWith("|")) header--;
        const expected = cells(lines[header]?.[1] ?? "");
        if (cells(line) !== expected) problems.push(`${file}:${at}: ${cells(line)} cells, the header has ${expected}`);
      }
    });
    expect(problems).toEqual([]);
  });

  test("no word of how the project is made: no issue, no build machines, no internal notes", () => {
    const internal = /\bthe issue\b|\bissue's\b|\bour (build )?machines?\b|\bthese machines\b|\bproxy here\b|shared\/notes\b/i;
    const found = text.split("\n").flatMap((line, i) => (internal.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : []));
    expect(found).toEqual([]);
  });
});

test("scripts and the Dockerfile name no particular machine either", () => {
  const internal = /\bthe issue\b|\bissue's\b|\bour (build )?machines?\b|\bthese machines\b|\bproxy here\b/i;
  const files = ["Dockerfile", ...readdirSync(join(REPO, "scripts")).map((name) => `scripts/${name}`)];
  const found = files.flatMap((file) => read(file).split("\n").flatMap((line, i) => (internal.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [])));
  expect(found).toEqual([]);
});

describe("README.md", () => {
  const readme = read("README.md");

  test("at most 300 lines", () => {
    expect(readme.split("\n").length).toBeLessThanOrEqual(300);
  });

  test("opens with the two set-up commands, the second exactly as .ci/run runs it", () => {
    const firstBlock = /```sh\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(firstBlock).toBe("bun install --frozen-lockfile && bun run start\nbun install --frozen-lockfile && bun run test");
    expect(read(".ci/run")).toContain("\nbun install --frozen-lockfile && bun run test 2>&1");
  });

  test("the scripted model's prompts: every one it understands, in the table and in its header", () => {
    const source = read("test/fixtures/mock-model.ts");
    const understood = [...source.matchAll(/^ {4}case "([a-z]+)":/gm)].map((match) => match[1]).sort();
    const tabled = [...readme.matchAll(/^\| `([a-z]+)[ `]/gm)].map((match) => match[1]).sort();
    const header = [...source.matchAll(/^ \* {3}([a-z]+)\b/gm)].map((match) => match[1]).sort();
    expect(understood.length).toBeGreaterThan(10);
    expect(tabled).toEqual(understood as string[]);
    expect(header).toEqual(understood as string[]);
  });
});

describe("docs/configuration.md", () => {
  test("its flag table is the one the flags write (bun run docs:flags)", () => {
    const text = readFileSync(CONFIGURATION_MD, "utf8");
    expect(text, "the flags changed: run `bun run docs:flags`").toBe(withFlagTable(text));
  });

  test("every flag it explains in detail is a flag", () => {
    const known = new Set([...Object.keys(args), "version", "help"]);
    const text = read("docs/configuration.md");
    const detailed = text.slice(text.indexOf("### Flags in detail"), text.indexOf("### Exit codes"));
    const named = [...detailed.matchAll(/^- \*\*`--([a-z-]+)/gm)].map((match) => match[1] as string);
    expect(named.length).toBeGreaterThan(10);
    expect(named.filter((name) => !known.has(name))).toEqual([]);
  });
});
