import { describe, expect, test } from "bun:test";
import { hostOfHostHeader, isLoopbackHost, tokenMatches } from "../src/middleware/access";

describe("isLoopbackHost", () => {
  test.each([
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["localhost", true],
    ["LOCALHOST", true],
    ["app.localhost", true],
    ["::1", true],
    ["[::1]", true],
    ["0.0.0.0", false],
    ["::", false],
    ["10.0.0.1", false],
    ["128.0.0.1", false],
    ["localhost.evil.com", false],
    ["evil.com", false],
    ["", false],
  ])("%p -> %p", (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe("hostOfHostHeader", () => {
  test.each([
    ["localhost:8081", "localhost"],
    ["localhost", "localhost"],
    ["[::1]:8081", "[::1]"],
    ["[::1]", "[::1]"],
    ["127.0.0.1:80", "127.0.0.1"],
    ["evil.com:8081", "evil.com"],
  ])("%p -> %p", (header, host) => {
    expect(hostOfHostHeader(header)).toBe(host);
  });
});

describe("tokenMatches", () => {
  test.each([
    ["secret", "secret", true],
    ["secret", "secreT", false],
    ["secret", "secret2", false],
    ["", "secret", false],
    ["a".repeat(10_000), "secret", false],
  ])("%p vs %p -> %p", (given, expected, matches) => {
    expect(tokenMatches(given, expected)).toBe(matches);
  });
});
