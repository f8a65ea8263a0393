import { describe, expect, test } from "bun:test";
import { hostIsListed, hostOfHostHeader, isBrowserHost, isLoopbackHost, tokenMatches } from "../src/middleware/access";

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

describe("isBrowserHost: names that DNS rebinding cannot point here", () => {
  const listed = ["codex.example.com", ".corp.example"];
  test.each([
    ["127.0.0.1", [], true],
    ["192.168.1.10", [], true],
    ["0.0.0.0", [], true],
    ["[::1]", [], true],
    ["[fe80::1]", [], true],
    ["[::ffff:10.0.0.1]", [], true],
    ["localhost", [], true],
    ["LOCALHOST", [], true],
    ["app.localhost", [], true],
    ["attacker.example", [], false],
    ["localhost.attacker.example", [], false],
    ["127.0.0.1.nip.io", [], false],
    ["0x7f.1", [], false],
    ["", [], false],
    ["codex.example.com", [], false],
    ["codex.example.com", listed, true],
    ["CODEX.Example.COM", listed, true],
    ["www.codex.example.com", listed, false],
    ["example.com", listed, false],
    ["corp.example", listed, true],
    ["build.corp.example", listed, true],
    ["a.b.corp.example", listed, true],
    ["notcorp.example", listed, false],
    ["corp.example.attacker.example", listed, false],
  ] as Array<[string, string[], boolean]>)("%p with %p -> %p", (host, allowed, expected) => {
    expect(isBrowserHost(host, allowed)).toBe(expected);
  });
});

describe("hostIsListed: Vite's allowedHosts rule", () => {
  test.each([
    ["a.example", ["a.example"], true],
    ["b.a.example", ["a.example"], false],
    ["a.example", [".a.example"], true],
    ["b.a.example", [".a.example"], true],
    ["ba.example", [".a.example"], false],
    ["a.example", [], false],
  ] as Array<[string, string[], boolean]>)("%p in %p -> %p", (host, allowed, expected) => {
    expect(hostIsListed(host, allowed)).toBe(expected);
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
