import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { rolloutDayFolders, rolloutExists } from "../src/engine/codex-home";

const THREAD = "01a22b0b-d8f2-7f20-ac92-fadcb01930fe";
/** UUIDv7 ids made at 2026-11-30T23:59:59.999Z and at 2026-11-30T06:02:06Z; a version 4 id. */
const BEFORE_MIDNIGHT = "01a22ee6-afff-7000-8000-000000000001";
const MOVED = "01a22b0b-d8f2-7f20-ac92-000000000002";
const NO_TIME = "3f2b8a4e-9c1d-4e5f-a6b7-c8d9e0f1a2b3";
let home: string;

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "codex-home-test-"));
  const day = join(home, "sessions", "2026", "11", "30");
  mkdirSync(day, { recursive: true });
  // As codex 0.163 names them; the second is no rollout of codex's, only a name that ends the same.
  writeFileSync(join(day, `rollout-2026-11-30T06-02-06-${THREAD}.jsonl`), "");
  writeFileSync(join(day, "rollout-2026-11-30T06-02-06-extra-01a22b0b-d8f2-7f20-ac92-0123456789ab.jsonl"), "");
  // Made a moment before midnight, filed under the next day; filed under another date entirely (moved); an id with no time in it.
  const next = join(home, "sessions", "2026", "12", "01");
  const elsewhere = join(home, "sessions", "2025", "01", "15");
  mkdirSync(next, { recursive: true });
  mkdirSync(elsewhere, { recursive: true });
  writeFileSync(join(next, `rollout-2026-12-01T00-00-00-${BEFORE_MIDNIGHT}.jsonl`), "");
  writeFileSync(join(elsewhere, `rollout-2025-01-15T09-00-00-${MOVED}.jsonl`), "");
  writeFileSync(join(elsewhere, `rollout-2025-01-15T09-00-00-${NO_TIME}.jsonl`), "");
});

afterAll(() => rmSync(home, { recursive: true, force: true }));

test.each([
  ["the whole id", THREAD, true],
  ["its last group", "fadcb01930fe", false],
  ["its last two groups", "ac92-fadcb01930fe", false],
  ["all but its first group", "d8f2-7f20-ac92-fadcb01930fe", false],
  ["all but its first character", THREAD.slice(1), false],
  ["in capitals (the request schema lowercases ids first)", THREAD.toUpperCase(), false],
  ["another id", "01a22b0b-d8f2-7f20-ac92-fadcb01930ff", false],
  ["an id found only after a prefix that is no time", "01a22b0b-d8f2-7f20-ac92-0123456789ab", false],
  ["a glob", "*", false],
  ["a glob after part of the id", "01a22b0b-*", false],
  ["an empty id", "", false],
  ["made before midnight, filed under the next day", BEFORE_MIDNIGHT, true],
  ["filed under another date (looked for in the whole tree)", MOVED, true],
  ["an id that names no time (looked for in the whole tree)", NO_TIME, true],
])("rolloutExists: %s -> %p", (_, threadId, exists) => {
  expect(rolloutExists({ CODEX_HOME: home }, threadId)).toBe(exists);
});

test("rolloutExists: a CODEX_HOME without sessions has no thread", () => {
  expect(rolloutExists({ CODEX_HOME: join(home, "nowhere") }, THREAD)).toBe(false);
});

describe("rolloutDayFolders", () => {
  const zone = process.env.TZ;
  afterEach(() => {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });

  test.each([
    ["UTC", THREAD, ["2026/11/30", "2026/11/29", "2026/12/01"]],
    ["America/Los_Angeles", THREAD, ["2026/11/29", "2026/11/28", "2026/11/30"]],
    ["Asia/Tokyo", BEFORE_MIDNIGHT, ["2026/12/01", "2026/11/30", "2026/12/02"]],
    ["UTC", NO_TIME, []],
    ["UTC", "01a22b0b-d8f2-4f20-ac92-fadcb01930fe", []],
  ])("in %s, %s: the day its id was made, then the days either side", (timeZone, threadId, folders) => {
    process.env.TZ = timeZone;
    expect(rolloutDayFolders(threadId)).toEqual(folders.map((folder) => folder.split("/").join(sep)));
  });
});
