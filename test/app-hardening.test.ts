import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setup } from "./fixtures/app-setup";
import { completedTurn, fakeEngine, hangingTurn } from "./fixtures/fake-engine";
import { parseSse } from "./fixtures/sse";
import { waitFor } from "./fixtures/wait-for";

const echo = () => fakeEngine(() => completedTurn("hello"));
const JSON_TYPE = { "content-type": "application/json" };
const turn = JSON.stringify({ type: "user_message", message: "hi" });

describe("bearer token", () => {
  const token = "s3cret-token";

  test("/health stays open", async () => {
    const res = await setup(echo(), { authToken: token }).app.request("/health");
    expect(res.status).toBe(200);
  });

  const refused: Array<[string, Record<string, string>, string]> = [
    ["no Authorization", {}, "Send Authorization: Bearer <token>."],
    ["a wrong token", { authorization: "Bearer nope" }, "The bearer token is not valid."],
    ["another scheme", { authorization: `Basic ${token}` }, "Send Authorization: Bearer <token>."],
    ["a token that only starts right", { authorization: `Bearer ${token}x` }, "The bearer token is not valid."],
  ];
  for (const [name, headers, message] of refused) {
    test(`${name} -> 401 with www-authenticate, codex never starts`, async () => {
      const engine = echo();
      const res = await setup(engine, { authToken: token }).app.request("/messages", {
        method: "POST",
        headers: { ...JSON_TYPE, ...headers },
        body: turn,
      });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="codex-http-server"');
      expect(await res.json()).toEqual({ error: { code: "unauthorized", message } });
      expect(engine.calls).toHaveLength(0);
    });
  }

  test("a token of any visible ASCII, as start-up allows it, passes: the header and the check read it alike", async () => {
    const visible = "~All.visible-ASCII_/+=!#$%&'*(){}[]:;<>?@^`|\\\"";
    const res = await setup(echo(), { authToken: visible }).app.request("/runs", { headers: { authorization: `Bearer ${visible}` } });
    expect(res.status).toBe(200);
  });

  test("the right token passes on every route, and never shows up in the log", async () => {
    const { app, logs } = setup(echo(), { authToken: token });
    const headers = { ...JSON_TYPE, authorization: `Bearer ${token}` };
    const res = await app.request("/messages", { method: "POST", headers, body: turn });
    expect(res.status).toBe(200);
    await res.text();
    expect((await app.request("/runs/none", { method: "DELETE", headers })).status).toBe(404);
    expect((await app.request("/elsewhere", { headers: { authorization: "Bearer bad" } })).status).toBe(401);
    expect(logs.join("")).not.toContain(token);
  });
});

describe("origin checks", () => {
  test("a request without Origin (curl, servers) passes", async () => {
    const res = await setup(echo()).app.request("/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  test("a cross-site POST gets 403 and never starts codex", async () => {
    const engine = echo();
    const res = await setup(engine).app.request("http://localhost:8081/messages", {
      method: "POST",
      headers: { ...JSON_TYPE, origin: "https://evil.example", host: "localhost:8081" },
      body: turn,
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({
      error: { code: "forbidden_origin", message: "Requests from https://evil.example are not allowed; see --allowed-origins." },
    });
    expect(engine.calls).toHaveLength(0);
  });

  test("a same-origin request passes", async () => {
    const res = await setup(echo()).app.request("http://localhost:8081/health", {
      headers: { origin: "http://localhost:8081", host: "localhost:8081" },
    });
    expect(res.status).toBe(200);
  });

  test("an allowed origin passes, with CORS headers", async () => {
    const { app } = setup(echo(), { allowedOrigins: ["https://app.example"] });
    const res = await app.request("/health", { headers: { origin: "https://app.example" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(res.headers.get("access-control-expose-headers")).toBe("x-request-id,retry-after");
  });

  test("its preflight is answered, before any token is asked for", async () => {
    const { app } = setup(echo(), { allowedOrigins: ["https://app.example"], authToken: "t" });
    const res = await app.request("/messages", {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(res.headers.get("access-control-allow-methods")).toBe("GET,HEAD,POST,DELETE");
    expect(res.headers.get("access-control-allow-headers")).toBe("authorization,content-type,last-event-id,x-request-id");
  });

  test("a preflight from another origin gets 403", async () => {
    const { app } = setup(echo(), { allowedOrigins: ["https://app.example"] });
    const res = await app.request("/messages", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(res.status).toBe(403);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("Host check when bound to loopback (DNS rebinding)", () => {
  const hosts: Array<[string, number]> = [
    ["localhost:8081", 200],
    ["127.0.0.1:8081", 200],
    ["[::1]:8081", 200],
    ["codex.example.com:8081", 200],
    ["evil.example:8081", 403],
    ["evil.example", 403],
    ["192.168.1.10:8081", 403],
  ];
  for (const [host, status] of hosts) {
    test(`Host ${host} -> ${status}, whoever sends it`, async () => {
      const { app } = setup(echo(), { host: "127.0.0.1", allowedHosts: ["codex.example.com"] });
      const res = await app.request("/health", { headers: { host } });
      expect(res.status).toBe(status);
      if (status === 403) {
        expect(await res.json()).toEqual({
          error: {
            code: "forbidden_host",
            message: "This server only answers requests addressed to localhost or to a name that --allowed-hosts lists.",
          },
        });
      }
    });
  }
});

describe("Host check beyond loopback (DNS rebinding)", () => {
  const REBOUND = "attacker.example:8081";
  const refusal = (name: string) => ({
    error: {
      code: "forbidden_host",
      message: `A browser may reach this server only by IP address, localhost or a name that --allowed-hosts lists, not as ${name}.`,
    },
  });
  const CHROMIUM_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
  /** What a browser adds to a same-origin request: Origin on POST, Sec-Fetch-* from secure contexts. */
  const browser = (host: string) => ({ host, origin: `http://${host}`, "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors" });

  for (const bind of ["0.0.0.0", "::"]) {
    describe(`bound to ${bind}`, () => {
      const refused: Array<[string, Record<string, string>]> = [
        ["Origin naming the rebound host (what a rebinding page's POST sends)", { host: REBOUND, origin: `http://${REBOUND}` }],
        ["Sec-Fetch-Site only", { host: REBOUND, "sec-fetch-site": "same-origin" }],
        ["Sec-Fetch-Mode only", { host: REBOUND, "sec-fetch-mode": "navigate" }],
        ["a browser's User-Agent only", { host: REBOUND, "user-agent": CHROMIUM_UA }],
        ["every mark", browser(REBOUND)],
      ];
      for (const [marks, headers] of refused) {
        test(`a foreign Host with ${marks} -> 403 forbidden_host, codex never starts`, async () => {
          const engine = echo();
          const res = await setup(engine, { host: bind }).post(turn, { ...JSON_TYPE, ...headers });
          expect(res.status).toBe(403);
          expect(await res.json()).toEqual(refusal("attacker.example"));
          expect(engine.calls).toHaveLength(0);
        });
      }

      test("a plain-http page's same-origin GET (no Origin, no Sec-Fetch-*) cannot read the runs under a foreign name", async () => {
        const res = await setup(echo(), { host: bind }).app.request("/runs", { headers: { host: REBOUND, "user-agent": CHROMIUM_UA } });
        expect(res.status).toBe(403);
        expect(await res.json()).toEqual(refusal("attacker.example"));
      });

      test("the console's page is refused to a browser under a foreign name too", async () => {
        const res = await setup(echo(), { host: bind }).app.request("/", {
          headers: { host: REBOUND, "sec-fetch-site": "none", "sec-fetch-mode": "navigate" },
        });
        expect(res.status).toBe(403);
        expect(await res.json()).toEqual(refusal("attacker.example"));
      });

      test("a foreign Host without a browser's marks (curl, SDKs, a proxy) runs the turn", async () => {
        const res = await setup(echo(), { host: bind }).post(turn, { ...JSON_TYPE, host: REBOUND, "user-agent": "curl/8.5.0" });
        expect(res.status).toBe(200);
        expect(res.headers.get("content-type")).toBe("text/event-stream");
        expect(parseSse(await res.text()).frames.at(-1)?.event).toBe("done");
      });

      const allowed = ["192.168.1.10:8081", "127.0.0.1:8081", "[::1]:8081", "[fe80::1]:8081", "localhost:8081", "app.localhost:8081", "codex.example.com:8081", "ci.corp.example:8081", "corp.example"];
      for (const host of allowed) {
        test(`a browser addressing it as ${host} runs the turn`, async () => {
          const { post } = setup(echo(), { host: bind, allowedHosts: ["codex.example.com", ".corp.example"] });
          const res = await post(turn, { ...JSON_TYPE, ...browser(host) });
          expect(res.status).toBe(200);
          expect(parseSse(await res.text()).frames.at(-1)?.event).toBe("done");
        });
      }

      test("a listed name does not excuse another site's Origin", async () => {
        const { post } = setup(echo(), { host: bind, allowedHosts: ["codex.example.com"] });
        const res = await post(turn, { ...JSON_TYPE, host: "codex.example.com", origin: "https://evil.example" });
        expect(res.status).toBe(403);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe("forbidden_origin");
      });
    });
  }
});

/** What Bun hands the app for a request without Host (HTTP/1.0 allows that): a URL that is only the request target. */
function hostlessRequest(target: string, init?: RequestInit): Request {
  const request = new Request(`http://unused${target}`, init);
  Object.defineProperty(request, "url", { value: target });
  return request;
}

describe("a request without Host", () => {
  const MISSING_HOST = { error: { code: "missing_host", message: "Send a Host header: this server needs it to tell whom a request is for." } };

  test("GET /health -> 400 missing_host, logged under its own path", async () => {
    const { app, logs } = setup(echo());
    const res = await app.fetch(hostlessRequest("/health?probe=1"));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual(MISSING_HOST);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/ INFO {2}GET \/health status=400 duration_ms=[\d.]+ request_id=generated-id\n$/);
  });

  test("POST /messages -> 400 missing_host, codex never starts", async () => {
    const engine = echo();
    const res = await setup(engine).app.fetch(hostlessRequest("/messages", { method: "POST", headers: JSON_TYPE, body: turn }));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual(MISSING_HOST);
    expect(engine.calls).toHaveLength(0);
  });
});

describe("workspace root", () => {
  let root: string;
  let outside: string;
  beforeAll(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), "root-")));
    outside = realpathSync(mkdtempSync(join(tmpdir(), "outside-")));
    mkdirSync(join(root, "project"));
    symlinkSync(outside, join(root, "escape"));
    symlinkSync(join(root, "project"), join(outside, "into-root"));
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  const send = (workDir?: string) => {
    const engine = echo();
    const { post } = setup(engine, { workspaceRoot: root, defaultWorkDir: root });
    return { engine, response: post({ type: "user_message", message: "hi", ...(workDir && { work_dir: workDir }) }) };
  };

  const allowed: Array<[string, () => string | undefined, () => string]> = [
    ["no work_dir: the root itself", () => undefined, () => root],
    ["the root", () => root, () => root],
    ["a directory inside", () => join(root, "project"), () => join(root, "project")],
    ["`..` that stays inside", () => join(root, "project", ".."), () => root],
    ["a symlink from outside into the root", () => join(outside, "into-root"), () => join(root, "project")],
  ];
  for (const [name, workDir, resolved] of allowed) {
    test(`${name} -> runs in its real path`, async () => {
      const { engine, response } = send(workDir());
      const res = await response;
      expect(res.status).toBe(200);
      await res.text();
      expect(engine.calls[0]?.workDir).toBe(resolved());
    });
  }

  const forbidden: Array<[string, () => string]> = [
    ["a directory outside", () => outside],
    ["`..` out of the root", () => join(root, "..")],
    ["a symlink inside that leads out", () => join(root, "escape")],
    ["/", () => "/"],
  ];
  for (const [name, workDir] of forbidden) {
    test(`${name} -> 403, codex never starts`, async () => {
      const { engine, response } = send(workDir());
      const res = await response;
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({
        error: { code: "work_dir_forbidden", message: "work_dir: must be inside the server's workspace root." },
      });
      expect(engine.calls).toHaveLength(0);
    });
  }
});

describe("cancelling a turn", () => {
  for (const how of ["user_cancel", "DELETE /runs/{id}"]) {
    test(`${how}: 200 {"cancelled": id}, and the stream ends with done cancelled`, async () => {
      const engine = fakeEngine(hangingTurn);
      const { app, post, runs } = setup(engine);
      const stream = await post({ type: "user_message", message: "hi", id: "to-cancel" });
      const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      const res =
        how === "user_cancel"
          ? await post({ type: "user_cancel", id: "to-cancel" })
          : await app.request("/runs/to-cancel", { method: "DELETE" });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ cancelled: "to-cancel" });
      let rest = "";
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
      const done = parseSse(rest).frames.at(-1);
      expect(done?.event).toBe("done");
      expect(JSON.parse(done?.data ?? "{}")).toMatchObject({ status: "cancelled", request_id: "to-cancel" });
      expect(engine.calls[0]?.signal.aborted).toBe(true);
      expect(runs.size).toBe(0);
    });
  }

  test("an unknown id -> 404", async () => {
    const { app, post } = setup(echo());
    const expected = { error: { code: "run_not_found", message: "No turn with id nope is running." } };
    const viaMessage = await post({ type: "user_cancel", id: "nope" });
    expect(viaMessage.status).toBe(404);
    expect(await viaMessage.json()).toEqual(expected);
    const viaDelete = await app.request("/runs/nope", { method: "DELETE" });
    expect(viaDelete.status).toBe(404);
    expect(await viaDelete.json()).toEqual(expected);
  });

  test("user_cancel needs a valid id; other methods on /runs/{id} get 405", async () => {
    const { app, post } = setup(echo());
    const noId = await post({ type: "user_cancel" });
    expect(noId.status).toBe(422);
    expect(await noId.json()).toEqual({ error: { code: "invalid_request", message: "id: Invalid input: expected string, received undefined" } });
    const put = await app.request("/runs/x", { method: "PUT" });
    expect(put.status).toBe(405);
    expect(put.headers.get("allow")).toBe("GET, DELETE");
  });
});

describe("concurrency limit", () => {
  test("past --max-concurrent-turns: 429 with retry-after, nothing queued", async () => {
    const engine = fakeEngine(hangingTurn);
    const { post, runs } = setup(engine, {}, 2);
    const running = [await post({ type: "user_message", message: "1", id: "t1" }), await post({ type: "user_message", message: "2", id: "t2" })];
    const third = await post({ type: "user_message", message: "3", id: "t3" });
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBe("5");
    expect(await third.json()).toEqual({ error: { code: "too_many_turns", message: "the limit of 2 running turns is reached; try again later" } });
    expect(engine.calls).toHaveLength(2);
    runs.stopAll("cancelled");
    await Promise.all(running.map((res) => res.text()));
  });
});

describe("log lines cannot be forged", () => {
  test("a decoded newline in the path is escaped", async () => {
    const { app, logs } = setup(echo());
    await app.request("/x%0AINFO%20fake");
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain("GET /x\\nINFO fake status=404");
  });

  test.each([
    ["%C2%85", "\\u0085"],
    ["%E2%80%A8", "\\u2028"],
    ["%E2%80%A9", "\\u2029"],
  ])("a decoded %s (a Unicode line end) in the path is escaped", async (encoded, escaped) => {
    const { app, logs } = setup(echo());
    await app.request(`/x${encoded}INFO%20fake`);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain(`GET /x${escaped}INFO fake status=404`);
  });
});

describe("Bun's idle timer", () => {
  test("is off before the server waits for an engine to take the turn, so a slow start cannot cut the request", async () => {
    let release!: () => void;
    const taken = new Promise<void>((resolve) => {
      release = resolve;
    });
    const engine = {
      ...fakeEngine(async function* () {
        await taken;
        yield* completedTurn("late");
      }),
      refusesWhenBusy: true,
    };
    const { app } = setup(engine);
    const timeouts: number[] = [];
    const env = { timeout: (_request: Request, seconds: number) => void timeouts.push(seconds) };
    const answer = app.request(
      "/messages",
      { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "user_message", message: "hi" }) },
      env,
    );
    // The engine has not produced its first event, and the idle timer is already off.
    await waitFor("the idle timer switched off", () => timeouts.length > 0);
    expect(timeouts).toEqual([0]);
    release();
    const res = await answer;
    expect(res.status).toBe(200);
    expect(parseSse(await res.text()).frames.at(-1)?.event).toBe("done");
  });
});
