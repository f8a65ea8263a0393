/** The /threads routes and the thread service, through createApp with a fake engine and a fake thread store. */
import { describe, expect, test } from "bun:test";
import { EngineBusyError, type StoredTurn, type ThreadStore } from "../src/engine/types";
import { setup } from "./fixtures/app-setup";
import { completedTurn, type FakeStoredThread, fakeEngine, fakeThreadStore, heldTurn, USAGE } from "./fixtures/fake-engine";
import { readSse } from "./fixtures/sse";
import { waitFor } from "./fixtures/wait-for";

const THREAD = "01a213ec-28be-7ba3-89bc-98f1fe7e9e8e";
const OTHER = "01a213ec-28be-7ba3-89bc-0000000000aa";
const UNKNOWN = "01a213ec-28be-7ba3-89bc-000000000000";
const TURN_1 = "01a213ec-28be-7ba3-89bc-000000000001";
const TURN_2 = "01a213ec-28be-7ba3-89bc-000000000002";
const JSON_TYPE = { "content-type": "application/json" };

function storedTurn(id: string, input: string, status: StoredTurn["status"] = "completed"): StoredTurn {
  return { id, input, items: [{ id: "item_0", type: "agent_message", text: `re: ${input}` }], status, usage: USAGE, startedAt: 1_790_000_000 };
}

function threads(): FakeStoredThread[] {
  return [
    {
      id: THREAD,
      name: "Deploy",
      preview: "say hello",
      cwd: "/work/a",
      createdAt: 1_790_000_000,
      updatedAt: 1_790_000_060,
      turns: [storedTurn(TURN_1, "say hello"), storedTurn(TURN_2, "say again", "interrupted")],
    },
    { id: OTHER, name: null, preview: "", cwd: "/work/b", createdAt: 1_780_000_000, updatedAt: 1_780_000_000, turns: [] },
  ];
}

const SUMMARY = {
  id: THREAD,
  name: "Deploy",
  preview: "say hello",
  cwd: "/work/a",
  created_at: "2026-09-21T14:13:20.000Z",
  updated_at: "2026-09-21T14:14:20.000Z",
  status: "idle",
};

/** The app over a fake thread store; `turns` scripts the engine's turns. */
function threadApp(overrides: Partial<ThreadStore> = {}, config: Parameters<typeof setup>[1] = {}, turns = () => completedTurn("ok", THREAD)) {
  const store = fakeThreadStore(threads(), overrides);
  const engine = fakeEngine(turns, store);
  const { app, runs } = setup(engine, config);
  const request = async (path: string, init: RequestInit = {}) => {
    const res = await app.request(path, init);
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
  };
  return { app, runs, store, engine, request };
}

/** A turn on THREAD through POST /messages, with the request id turn-1: its response streams until the turn ends. */
function startTurn(app: ReturnType<typeof setup>["app"]) {
  return app.request("/messages", {
    method: "POST",
    headers: { ...JSON_TYPE, "x-request-id": "turn-1" },
    body: JSON.stringify({ type: "user_message", message: "hi", thread_id: THREAD }),
  });
}

const invalid = (message: string) => ({ status: 422, body: { error: { code: "invalid_request", message } } });
const notFound = { status: 404, body: { error: { code: "thread_not_found", message: `No codex thread ${UNKNOWN} is stored here.` } } };

describe("GET /threads", () => {
  test("lists the store's threads in the API's shape, 20 at a time unless asked, and starts no turn", async () => {
    const { request, store, engine } = threadApp();
    const { status, body } = await request("/threads");
    expect(status).toBe(200);
    expect(body).toEqual({
      threads: [
        SUMMARY,
        { id: OTHER, name: null, preview: "", cwd: "/work/b", created_at: "2026-05-28T20:26:40.000Z", updated_at: "2026-05-28T20:26:40.000Z", status: "idle" },
      ],
      next_cursor: null,
    });
    await request("/threads?limit=100&cursor=page-2&cwd=%2Fwork%2Fa&q=deploy");
    expect(store.calls).toEqual([
      ["list", { limit: 20, cursor: undefined, cwd: undefined, search: undefined }],
      ["list", { limit: 100, cursor: "page-2", cwd: "/work/a", search: "deploy" }],
    ]);
    expect(engine.calls).toHaveLength(0);
  });

  const badQueries: Array<[string, string]> = [
    ["limit=0", "limit: must be a whole number from 1 to 100"],
    ["limit=101", "limit: must be a whole number from 1 to 100"],
    ["limit=ten", "limit: must be a whole number from 1 to 100"],
    ["limit=1.5", "limit: must be a whole number from 1 to 100"],
    ["limit=", "limit: must be a whole number from 1 to 100"],
    ["cursor=", "cursor: must not be empty"],
    ["cwd=work", "cwd: must be an absolute path"],
    ["q=", "q: must not be empty"],
    [`q=${"x".repeat(201)}`, "q: must be at most 200 characters"],
    ["page=2", "page: unknown field"],
  ];
  for (const [query, message] of badQueries) {
    test(`?${query.slice(0, 20)} -> 422`, async () => {
      const { request, store } = threadApp();
      expect(await request(`/threads?${query}`)).toMatchObject(invalid(message));
      expect(store.calls).toHaveLength(0);
    });
  }

  test("a cursor the store refuses -> 400 invalid_cursor", async () => {
    expect(await threadApp().request("/threads?cursor=stale")).toMatchObject({
      status: 400,
      body: { error: { code: "invalid_cursor", message: "cursor: must be a next_cursor given for the same query." } },
    });
  });

  test("an engine too busy to answer -> 503 engine_busy with Retry-After", async () => {
    const res = await threadApp({ list: () => Promise.reject(new EngineBusyError("codex app-server is restarting; try again in 3 s", 3)) }).request("/threads");
    expect(res).toMatchObject({ status: 503, body: { error: { code: "engine_busy", message: "codex app-server is restarting; try again in 3 s" } } });
    expect(res.headers.get("retry-after")).toBe("3");
  });

  test("a thread with a running turn is running, until the turn ends", async () => {
    const held = heldTurn(THREAD);
    const { app, request } = threadApp({}, {}, held.turn);
    const res = await startTurn(app);
    expect((await request("/threads")).body.threads[0].status).toBe("running");
    held.release();
    await readSse(res);
    expect((await request("/threads")).body.threads[0].status).toBe("idle");
  });
});

describe("GET /threads/{id}", () => {
  test("the summary with the turns, 20 at a time unless asked; the id is read in either case", async () => {
    const { request, store } = threadApp();
    expect(await request(`/threads/${THREAD.toUpperCase()}?turns_limit=5&cursor=page-2`)).toMatchObject({
      status: 200,
      body: {
        ...SUMMARY,
        turns: [
          { id: TURN_1, input: "say hello", items: [{ id: "item_0", type: "agent_message", text: "re: say hello" }], status: "completed", usage: USAGE },
          { id: TURN_2, input: "say again", items: [{ id: "item_0", type: "agent_message", text: "re: say again" }], status: "interrupted", usage: USAGE },
        ],
        next_cursor: null,
      },
    });
    await request(`/threads/${THREAD}`);
    expect(store.calls).toEqual([
      ["read", THREAD, { turnsLimit: 5, cursor: "page-2" }],
      ["read", THREAD, { turnsLimit: 20, cursor: undefined }],
    ]);
  });

  test("the newest turn of a thread that is running is in progress, though the store saw it interrupted", async () => {
    const held = heldTurn(THREAD);
    const { app, request } = threadApp({}, {}, held.turn);
    const res = await startTurn(app);
    const running = (await request(`/threads/${THREAD}`)).body;
    expect([running.status, running.turns.map((turn: { status: string }) => turn.status)]).toEqual(["running", ["completed", "in_progress"]]);
    // A page of older turns has not the newest one.
    expect((await request(`/threads/${THREAD}?cursor=page-2`)).body.turns[1].status).toBe("interrupted");
    held.release();
    await readSse(res);
    expect((await request(`/threads/${THREAD}`)).body.turns[1].status).toBe("interrupted");
  });

  test("a thread whose history codex lacks is rebuilt once, with no turn starting on it meanwhile", async () => {
    let rebuilt = false;
    let finishRebuild!: () => void;
    const rebuilding = new Promise<void>((resolve) => (finishRebuild = resolve));
    const base = fakeThreadStore(threads());
    const { app, request, store, engine } = threadApp({
      read: async (threadId, query) => ({ ...(await base.read(threadId, query)), ...(!rebuilt && { turns: [], historyMissing: true }) }),
      rebuildHistory: async () => {
        await rebuilding;
        rebuilt = true;
      },
    });
    const reads = [request(`/threads/${THREAD}`), request(`/threads/${THREAD}`)];
    await waitFor("the rebuild", () => store.calls.some(([method]) => method === "rebuildHistory"));
    const refused = await startTurn(app);
    expect({ status: refused.status, body: await refused.json() }).toEqual({
      status: 409,
      body: { error: { code: "thread_busy", message: `thread ${THREAD} is having its history rebuilt; it takes no turn meanwhile` } },
    });
    finishRebuild();
    for (const read of await Promise.all(reads)) expect(read.body.turns).toHaveLength(2);
    expect(store.calls.filter(([method]) => method === "rebuildHistory")).toHaveLength(1);
    expect(engine.calls).toHaveLength(0);
  });

  test("bad ids, limits and cursors", async () => {
    const { request } = threadApp();
    expect(await request("/threads/01a213ec-28be")).toMatchObject(
      invalid("id: must be a codex thread id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"),
    );
    expect(await request(`/threads/${UNKNOWN}`)).toMatchObject(notFound);
    expect(await request(`/threads/${THREAD}?turns_limit=0`)).toMatchObject(invalid("turns_limit: must be a whole number from 1 to 100"));
    expect(await request(`/threads/${THREAD}?limit=5`)).toMatchObject(invalid("limit: unknown field"));
    expect(await request(`/threads/${THREAD}?cursor=stale`)).toMatchObject({ status: 400, body: { error: { code: "invalid_cursor" } } });
  });
});

describe("PATCH /threads/{id}", () => {
  const rename = (body: string, headers: Record<string, string> = JSON_TYPE) => ({ method: "PATCH", headers, body });

  test("renames (trimmed) and answers the summary", async () => {
    const { request, store } = threadApp();
    expect(await request(`/threads/${THREAD}`, rename(JSON.stringify({ name: "  Release  " })))).toMatchObject({
      status: 200,
      body: { ...SUMMARY, name: "Release" },
    });
    expect(store.calls).toEqual([["rename", THREAD, "Release"]]);
  });

  const badBodies: Array<[string, string, Record<string, string>, { status: number; body: unknown }]> = [
    ["no name", "{}", JSON_TYPE, invalid("name: Invalid input: expected string, received undefined")],
    ["a blank name", '{"name":"  "}', JSON_TYPE, invalid("name: must not be empty")],
    ["a long name", JSON.stringify({ name: "n".repeat(201) }), JSON_TYPE, invalid("name: must be at most 200 characters")],
    ["another field", '{"name":"a","pinned":true}', JSON_TYPE, invalid("pinned: unknown field")],
    ["bad JSON", '{"name":', JSON_TYPE, { status: 400, body: { error: { code: "invalid_json", message: "The request body is not valid JSON." } } }],
    [
      "not JSON",
      "name=a",
      { "content-type": "application/x-www-form-urlencoded" },
      { status: 415, body: { error: { code: "unsupported_media_type", message: "Send the body as JSON with content-type: application/json." } } },
    ],
  ];
  for (const [name, body, headers, expected] of badBodies) {
    test(`${name} -> ${expected.status}`, async () => {
      const { request, store } = threadApp();
      expect(await request(`/threads/${THREAD}`, rename(body, headers))).toMatchObject(expected);
      expect(store.calls).toHaveLength(0);
    });
  }

  test("a body over --max-body-bytes -> 413; an unknown thread -> 404", async () => {
    const { request } = threadApp();
    expect(await request(`/threads/${THREAD}`, rename(JSON.stringify({ name: "n".repeat(2000) })))).toMatchObject({
      status: 413,
      body: { error: { code: "payload_too_large", message: "The request body is larger than 1024 bytes." } },
    });
    expect(await request(`/threads/${UNKNOWN}`, rename('{"name":"a"}'))).toMatchObject(notFound);
  });
});

describe("DELETE /threads/{id}", () => {
  test("archives: 200, then 404", async () => {
    const { request } = threadApp();
    expect(await request(`/threads/${THREAD}`, { method: "DELETE" })).toMatchObject({ status: 200, body: { id: THREAD, archived: true } });
    expect(await request(`/threads/${THREAD}`)).toMatchObject({ status: 404 });
    expect(await request(`/threads/${UNKNOWN}`, { method: "DELETE" })).toMatchObject(notFound);
  });

  test("a thread with a running turn -> 409 thread_busy, and it is not archived", async () => {
    const held = heldTurn(THREAD);
    const { app, request, store } = threadApp({}, {}, held.turn);
    const res = await startTurn(app);
    expect(await request(`/threads/${THREAD}`, { method: "DELETE" })).toMatchObject({
      status: 409,
      body: { error: { code: "thread_busy", message: `thread ${THREAD} is running turn turn-1; a thread runs one turn at a time` } },
    });
    expect(store.calls).toHaveLength(0);
    held.release();
    await readSse(res);
  });

  test("no turn starts on a thread while it is archived", async () => {
    let finishArchive!: () => void;
    const archiving = new Promise<void>((resolve) => (finishArchive = resolve));
    const { app, request, engine } = threadApp({ archive: () => archiving });
    const archived = request(`/threads/${THREAD}`, { method: "DELETE" });
    const res = await startTurn(app);
    expect({ status: res.status, body: await res.json() }).toEqual({
      status: 409,
      body: { error: { code: "thread_busy", message: `thread ${THREAD} is being archived; it takes no turn meanwhile` } },
    });
    expect(await request(`/threads/${THREAD}`, { method: "DELETE" })).toMatchObject({
      status: 409,
      body: { error: { code: "thread_busy", message: `thread ${THREAD} is being archived; it takes no turn meanwhile` } },
    });
    finishArchive();
    expect((await archived).status).toBe(200);
    expect(engine.calls).toHaveLength(0);
  });
});

describe("POST /threads/{id}/fork", () => {
  test("without a body: the whole thread; with turn_id: up to that turn; 201 with the new thread's id", async () => {
    const { request, store } = threadApp();
    const forked = { status: 201, body: { thread_id: "01a213ec-28be-7ba3-89bc-0000000f0f0f" } };
    expect(await request(`/threads/${THREAD}/fork`, { method: "POST" })).toMatchObject(forked);
    expect(await request(`/threads/${THREAD}/fork`, { method: "POST", headers: JSON_TYPE, body: "{}" })).toMatchObject(forked);
    expect(await request(`/threads/${THREAD}/fork`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ turn_id: TURN_1.toUpperCase() }) })).toMatchObject(forked);
    expect(store.calls).toEqual([
      ["fork", THREAD, {}],
      ["fork", THREAD, {}],
      ["fork", THREAD, { lastTurnId: TURN_1 }],
    ]);
  });

  test("bad input: a turn id that is not one, an unknown turn, a body that is not JSON", async () => {
    const { request } = threadApp();
    const fork = (body: string, headers: Record<string, string> = JSON_TYPE) => request(`/threads/${THREAD}/fork`, { method: "POST", headers, body });
    expect(await fork('{"turn_id":"first"}')).toMatchObject(invalid("turn_id: must be a codex turn id: a UUID such as 01a213ec-28be-7ba3-89bc-98f1fe7e9e8e"));
    expect(await fork(JSON.stringify({ turn_id: UNKNOWN }))).toMatchObject({
      status: 404,
      body: { error: { code: "turn_not_found", message: `Thread ${THREAD} has no turn ${UNKNOWN}.` } },
    });
    expect(await fork("turn_id=x", { "content-type": "text/plain" })).toMatchObject({ status: 415 });
    expect(await request(`/threads/${UNKNOWN}/fork`, { method: "POST" })).toMatchObject(notFound);
  });

  test("a thread with a running turn -> 409 thread_busy", async () => {
    const held = heldTurn(THREAD);
    const { app, request, store } = threadApp({}, {}, held.turn);
    const res = await startTurn(app);
    expect(await request(`/threads/${THREAD}/fork`, { method: "POST" })).toMatchObject({ status: 409, body: { error: { code: "thread_busy" } } });
    expect(store.calls).toHaveLength(0);
    held.release();
    await readSse(res);
  });
});

describe("the /threads routes", () => {
  const disallowed: Array<[string, string, string]> = [
    ["POST", "/threads", "GET"],
    ["PUT", `/threads/${THREAD}`, "GET, PATCH, DELETE"],
    ["GET", `/threads/${THREAD}/fork`, "POST"],
  ];
  for (const [method, path, allow] of disallowed) {
    test(`${method} ${path.replace(THREAD, "{id}")} -> 405 Allow: ${allow}`, async () => {
      const res = await threadApp().request(path, { method });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe(allow);
    });
  }

  test("need the bearer token like the rest of the API", async () => {
    const { request } = threadApp({}, { authToken: "secret-token" });
    expect(await request("/threads")).toMatchObject({ status: 401, body: { error: { code: "unauthorized" } } });
    expect(await request(`/threads/${THREAD}`, { method: "DELETE" })).toMatchObject({ status: 401 });
    expect(await request("/threads", { headers: { authorization: "Bearer secret-token" } })).toMatchObject({ status: 200 });
  });

  test("are not there when the engine has no thread store", async () => {
    const { app } = setup(fakeEngine(() => completedTurn("ok")));
    const res = await app.request("/threads");
    expect({ status: res.status, body: await res.json() }).toEqual({ status: 404, body: { error: { code: "not_found", message: "There is no /threads here." } } });
  });
});
