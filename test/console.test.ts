import { describe, expect, test } from "bun:test";
import { consoleAssets } from "../src/console/assets";
import { setup } from "./fixtures/app-setup";
import { completedTurn, fakeEngine } from "./fixtures/fake-engine";

const echo = () => fakeEngine(() => completedTurn("hello"));
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

describe("GET / (the web console)", () => {
  test("serves the page with headers that keep it to its own origin", async () => {
    const res = await setup(echo()).app.request("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toBe(CSP);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const html = await res.text();
    expect(html).toStartWith("<!doctype html>");
    expect(html).toContain('<script type="module" src="/console/console.js"></script>');
    expect(html).toContain('<link rel="stylesheet" href="/console/console.css">');
  });

  const files = [
    ["/console/console.js", "text/javascript; charset=utf-8"],
    ["/console/markdown.js", "text/javascript; charset=utf-8"],
    ["/console/sse.js", "text/javascript; charset=utf-8"],
    ["/console/threads.js", "text/javascript; charset=utf-8"],
    ["/console/console.css", "text/css; charset=utf-8"],
  ] as const;
  for (const [path, type] of files) {
    test(`serves ${path} as ${type.split(";")[0]}`, async () => {
      const res = await setup(echo()).app.request(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(type);
      expect((await res.text()).length).toBeGreaterThan(100);
    });
  }

  test("the scripts are plain JavaScript that imports its siblings by their served names", async () => {
    const js = await (await setup(echo()).app.request("/console/console.js")).text();
    expect(js).toContain('from "./markdown.js"');
    expect(js).toContain('from "./sse.js"');
    expect(js).toContain('from "./threads.js"');
    expect(js).not.toMatch(/import type|: HTMLElement|as ActiveRun/);
    // Type-only imports are gone, so the browser never asks for server modules.
    expect(js).not.toContain("@openai/codex-sdk");
    expect(js).not.toContain("../schemas");
  });

  test("answers 304 to a matching If-None-Match, so reloads cost nothing", async () => {
    const { app } = setup(echo());
    const first = await app.request("/console/console.css");
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^"[0-9a-z]+"$/);
    const again = await app.request("/console/console.css", { headers: { "if-none-match": etag as string } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const stale = await app.request("/console/console.css", { headers: { "if-none-match": '"other"' } });
    expect(stale.status).toBe(200);
  });

  test("is public under --auth-token (the page holds no secret), while the API still needs the token", async () => {
    const { app, post } = setup(echo(), { authToken: "s3cret" });
    expect((await app.request("/")).status).toBe(200);
    expect((await app.request("/console/console.js")).status).toBe(200);
    expect((await post({ type: "user_message", message: "hi" })).status).toBe(401);
  });

  test("other methods get 405 with Allow", async () => {
    const res = await setup(echo()).app.request("/", { method: "POST" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
    expect(await res.json()).toEqual({ error: { code: "method_not_allowed", message: "POST is not allowed on /; use GET or HEAD." } });
  });

  test("--no-console: / and its files are not there", async () => {
    const { app } = setup(echo(), { webConsole: false });
    for (const path of ["/", "/console/console.js"]) {
      const res = await app.request(path);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: { code: "not_found", message: `There is no ${path} here.` } });
    }
  });

  test("a browser on another site is refused, like on every route", async () => {
    const res = await setup(echo(), { host: "127.0.0.1" }).app.request("http://127.0.0.1:8081/", {
      headers: { host: "evil.example", origin: "http://evil.example" },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("forbidden_host");
  });

  test("the assets are read from src/console, with TypeScript types stripped", () => {
    const paths = consoleAssets().map((asset) => asset.path);
    expect(paths).toEqual(["/", "/console/console.css", "/console/console.js", "/console/markdown.js", "/console/sse.js", "/console/threads.js"]);
  });
});
