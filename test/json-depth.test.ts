import { expect, test } from "bun:test";
import { exceedsJsonDepth } from "../src/json-depth";

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

test.each([
  ["a number", "1", 0, false],
  ["a string", '"x"', 0, false],
  ["an empty object at limit 0", "{}", 0, true],
  ["an empty object at limit 1", "{}", 1, false],
  ["an object in an array", '[{"a":1}]', 2, false],
  ["an object in an array, limit 1", '[{"a":1}]', 1, true],
  ["siblings do not add up", '[[],[],{"a":1},[]]', 2, false],
  ["depth comes back down after a close", '[[1],[[2]]]', 3, false],
  ["the deepest branch counts", '[[1],[[2]]]', 2, true],
  ["exactly at the limit", nested(64), 64, false],
  ["one past the limit", nested(65), 64, true],
  ["20,000 deep", nested(20_000), 64, true],
  ["20,000 deep objects", '{"a":'.repeat(20_000) + "1" + "}".repeat(20_000), 64, true],
  ["brackets inside a string do not count", JSON.stringify({ a: "[[[[{{{{" }), 1, false],
  ["an escaped quote does not end the string", JSON.stringify({ a: 'say \\"[[[' }), 1, false],
  ["an escaped backslash before the closing quote ends it", '{"a":"x\\\\"}', 1, false],
  ["an escaped backslash before the closing quote, then nesting", '{"a":"x\\\\",' + '"b":[[1]]}', 2, true],
  ["\\u escapes", JSON.stringify({ a: "\u005b\u005b" }).replaceAll("[", "\\u005b"), 1, false],
  ["keys are strings too", '{"[[[":1}', 1, false],
  ["whitespace between brackets", "[ [\n[ ] ] ]", 2, true],
])("%s", (_, text, limit, exceeds) => {
  expect(exceedsJsonDepth(text, limit)).toBe(exceeds);
});

test("a 1 MiB body, nested all the way or flat, is read without recursion", () => {
  expect(exceedsJsonDepth(nested(512 * 1024), 64)).toBe(true);
  expect(exceedsJsonDepth(`[${"1,".repeat(512 * 1024 - 1)}1]`, 64)).toBe(false);
});
