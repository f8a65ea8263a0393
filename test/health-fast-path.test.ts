import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import type { AppDeps } from "../src/app-types";
import { createLogger } from "../src/log";
import { createMetrics } from "../src/metrics";
import { healthFastPath } from "../src/routes/health-fast-path";
import { setup } from "./fixtures/app-setup";
import { completedTurn, fakeEngine } from "./fixtures/fake-engine";
import { startTestServer, type TestServer } from "./fixtures/test-server";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const NO_SERVER = undefined as unknown as Server<undefined>;

/** The fast path beside the app it stands in front of, both logging and counting, with the requests it hands on. */
function fastPathAndApp(config: Partial<AppDeps["config"]> = {}) {
  const metrics = createMetrics({
    activeTurns: () => 0,
    queuedTurns: () => 0,
    activeCodexProcesses: () => 0,
    retainedRuns: () => 0,
    retainedRunBytes: () => 0,
    pendingWebhookDeliveries: () => 0,
  });
  const { app, logs } = setup(fakeEngine(() => completedTurn("hi")), config, 100, { metrics });
  const handedOn: Request[] = [];
  const fastLogs: string[] = [];
  const fast = healthFastPath(
    { config: { host: "0.0.0.0", allowedHosts: [], allowedOrigins: [], ...config } as AppDeps["config"], log: createLogger("info", (line) => void fastLogs.push(line)), metrics },
    (request) => {
      handedOn.push(request);
      return app.fetch(request);
    },
  );
  return { app, logs, fast, fastLogs, handedOn, metrics };
}

async function answer(res: Response) {
  return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
}

describe("healthFastPath", () => {
  test("answers a plain GET and HEAD itself, as the app's route does, with a request id, a counted request and a log line", async () => {
    const { app, fast, fastLogs, handedOn, metrics } = fastPathAndApp();
    for (const method of ["GET", "HEAD"] as const) {
      const request = () => new Request("http://127.0.0.1:8081/health?probe=1", { method, headers: { "user-agent": "curl/8" } });
      const res = await fast[method](request(), NO_SERVER);
      // Bun's server drops a HEAD answer's body on the wire; Hono drops it itself.
      const expected = await answer(await app.request(request()));
      expect(await answer(res)).toEqual({ ...expected, body: '{"status":"ok"}' });
      expect(res.headers.get("x-request-id")).toMatch(UUID);
    }
    expect(handedOn).toEqual([]);
    expect(fastLogs).toHaveLength(2);
    expect(fastLogs[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}GET \/health status=200 duration_ms=[\d.]+ request_id=[0-9a-f-]{36}\n$/);
    expect(fastLogs[1]).toMatch(/ INFO {2}HEAD \/health status=200 /);
    const scraped = await metrics.registry.metrics();
    expect(scraped).toContain('codex_http_requests_total{method="GET",route="/health",status="200"} 2');
    expect(scraped).toContain('codex_http_requests_total{method="HEAD",route="/health",status="200"} 2');
  });

  test("keeps a well-formed X-Request-ID and replaces one that is not", async () => {
    const { fast } = fastPathAndApp();
    const given = await fast.GET(new Request("http://127.0.0.1/health", { headers: { "x-request-id": "probe-7" } }), NO_SERVER);
    expect(given.headers.get("x-request-id")).toBe("probe-7");
    const forged = await fast.GET(new Request("http://127.0.0.1/health", { headers: { "x-request-id": "a\u0001b" } }), NO_SERVER);
    expect(forged.headers.get("x-request-id")).toMatch(UUID);
  });

  // What the browser checks refuse, and what CORS may answer, the app answers: one place for those rules.
  test.each([
    ["a browser addressing a rebound name", "http://attacker.example/health", { "user-agent": "Mozilla/5.0" }, 403, "forbidden_host"],
    ["a fetch from a page on another site", "http://127.0.0.1/health", { origin: "https://attacker.example" }, 403, "forbidden_origin"],
    ["a fetch from the server's own page", "http://127.0.0.1/health", { origin: "http://127.0.0.1" }, 200, undefined],
  ] as const)("%s goes on to the app", async (_name, url, headers, status, code) => {
    const { fast, fastLogs, handedOn, logs } = fastPathAndApp();
    const res = await fast.GET(new Request(url, { headers }), NO_SERVER);
    expect(res.status).toBe(status);
    const body = (await res.json()) as { error?: { code: string } };
    expect(body.error?.code).toBe(code);
    expect(handedOn).toHaveLength(1);
    expect(fastLogs).toEqual([]);
    expect(logs).toHaveLength(1);
  });

  test("bound to loopback, a Host naming anything else goes on to the app's 403 whoever sends it", async () => {
    const { fast, handedOn } = fastPathAndApp({ host: "127.0.0.1" });
    const res = await fast.GET(new Request("http://codex.example/health", { headers: { "user-agent": "curl/8" } }), NO_SERVER);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("forbidden_host");
    expect(handedOn).toHaveLength(1);
  });
});

describe("GET /health through the real server's router", () => {
  let server: TestServer;
  beforeAll(() => {
    server = startTestServer({ logLevel: "info" });
  });
  afterAll(() => server.close());

  test("GET and HEAD answer from the router, logged and counted; other methods still reach the app's 405", async () => {
    const get = await fetch(`${server.url}/health`, { headers: { "x-request-id": "router-1" } });
    expect(get.status).toBe(200);
    expect(get.headers.get("x-request-id")).toBe("router-1");
    expect(get.headers.get("content-type")).toBe("application/json");
    expect(await get.text()).toBe('{"status":"ok"}');
    const head = await fetch(`${server.url}/health`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("15");
    expect(await head.text()).toBe("");
    const post = await fetch(`${server.url}/health`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(await post.json()).toEqual({ error: { code: "method_not_allowed", message: "POST is not allowed on /health; use GET or HEAD." } });
    expect(server.logs.filter((line) => / \S+ \/health /.test(line)).map((line) => /INFO {2}(\S+ \/health status=\d+)/.exec(line)?.[1])).toEqual([
      "GET /health status=200",
      "HEAD /health status=200",
      "POST /health status=405",
    ]);
    const scraped = await (await fetch(`${server.url}/metrics`)).text();
    expect(scraped).toContain('codex_http_requests_total{method="GET",route="/health",status="200"} 1');
    expect(scraped).toContain('codex_http_requests_total{method="HEAD",route="/health",status="200"} 1');
  });
});
