import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rolloutExists } from "../src/engine/codex-home";

const THREAD = "01a22b0b-d8f2-7f20-ac92-fadcb01930fe";
let home: string;

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "codex-home-test-"));
  const day = join(home, "sessions", "2026", "11", "30");
  mkdirSync(day, { recursive: true });
  // As codex 0.163 names them; the second is no rollout of codex's, only a name that ends the same.
  writeFileSync(join(day, `rollout-2026-11-30T06-02-06-${THREAD}.jsonl`), "");
  writeFileSync(join(day, "rollout-2026-11-30T06-02-06-extra-01a22b0b-d8f2-7f20-ac92-0123456789ab.jsonl"), "");
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
])("rolloutExists: %s -> %p", (_, threadId, exists) => {
  expect(rolloutExists({ CODEX_HOME: home }, threadId)).toBe(exists);
});

test("rolloutExists: a CODEX_HOME without sessions has no thread", () => {
  expect(rolloutExists({ CODEX_HOME: join(home, "nowhere") }, THREAD)).toBe(false);
});
