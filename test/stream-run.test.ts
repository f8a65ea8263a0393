import { expect, test } from "bun:test";
import { parseLastEventId } from "../src/sse/stream-run";

test.each([
  [undefined, 0],
  ["0", 0],
  ["3", 3],
  ["007", 7],
  [" 12\t", 12],
  ["9007199254740991", Number.MAX_SAFE_INTEGER],
  ["9007199254740992", undefined],
  ["99999999999999999999", undefined],
  ["", undefined],
  ["  ", undefined],
  ["1e1", undefined],
  ["0x3", undefined],
  ["0b1", undefined],
  ["-1", undefined],
  ["+1", undefined],
  ["1.0", undefined],
  ["1.5", undefined],
  ["1_000", undefined],
  ["1 2", undefined],
  ["Infinity", undefined],
  ["NaN", undefined],
  ["abc", undefined],
  ["\u0663", undefined],
  ["3\n", undefined],
])("Last-Event-ID %p -> %p", (header, expected) => {
  expect(parseLastEventId(header)).toBe(expected);
});
