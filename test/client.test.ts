/** The typed client against the real server and the real codex (scripted model). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type ClientEvent, CodexServerClient, ServerError } from "../src/client";
import { startTestServer, type TestServer } from "./fixtures/test-server";

let server: TestServer;
let client: CodexServerClient;

beforeAll(() => {
  server = startTestServer({ reattachGraceMs: 10_000 });
  client = new CodexServerClient({ baseUrl: server.url });
});
afterAll(() => server.close());

async function all(events: AsyncIterable<ClientEvent>): Promise<ClientEvent[]> {
  const seen: ClientEvent[] = [];
  for await (const event of events) seen.push(event);
  return seen;
}

describe("CodexServerClient", () => {
  test("sendMessage yields typed events, done last", async () => {
    const events = await all(client.sendMessage({ message: "say typed", id: "client-1" }));
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    const message = events.find((e) => e.type === "item.completed" && e.data.type === "item.completed" && e.data.item.type === "agent_message");
    expect(message?.data).toMatchObject({ item: { text: "typed" } });
    const done = events.at(-1);
    expect(done?.type).toBe("done");
    expect(done?.data).toMatchObject({ status: "completed", request_id: "client-1", final_response: "typed" });
    expect(await client.run("client-1")).toMatchObject({ id: "client-1", status: "completed" });
    expect(await client.health()).toEqual({ status: "ok" });
  });

  test("a refused request throws ServerError with the server's code", async () => {
    const refused = client.sendMessage({ message: " " })[Symbol.asyncIterator]().next();
    await expect(refused).rejects.toEqual(new ServerError(422, "invalid_request", "message: must not be empty"));
    const guarded = startTestServer({ authToken: "s3cret" });
    try {
      await expect(new CodexServerClient({ baseUrl: guarded.url }).run("x")).rejects.toMatchObject({ status: 401, code: "unauthorized" });
      await expect(new CodexServerClient({ baseUrl: guarded.url, token: "s3cret" }).run("x")).rejects.toMatchObject({ status: 404, code: "run_not_found" });
    } finally {
      await guarded.close();
    }
  });

  test("a dropped connection is reattached with Last-Event-ID: every event once, then done", async () => {
    const urls: string[] = [];
    let cut = false;
    const flaky: typeof fetch = Object.assign(
      async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
        urls.push(String(input));
        const res = await fetch(input, init);
        if (cut || !String(input).endsWith("/messages")) return res;
        cut = true;
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        let seen = "";
        const body = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const chunk = await reader.read();
            if (chunk.done) return controller.close();
            controller.enqueue(chunk.value);
            seen += new TextDecoder().decode(chunk.value);
            if (seen.includes("event: turn.started")) {
              await reader.cancel();
              controller.error(new Error("connection reset"));
            }
          },
        });
        return new Response(body, { status: res.status, headers: res.headers });
      },
      { preconnect: fetch.preconnect },
    );
    const flakyClient = new CodexServerClient({ baseUrl: server.url, fetch: flaky });
    const events = await all(flakyClient.sendMessage({ message: "sleep 1000 through the gap", id: "client-drop" }));
    expect(urls.at(-1)).toBe(`${server.url}/runs/client-drop/events`);
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)?.data).toMatchObject({ status: "completed", final_response: "through the gap" });
  });

  test("threads: list, read, rename, fork and archive, typed; a refusal throws ServerError", async () => {
    const events = await all(client.sendMessage({ message: "say kept" }));
    const threadId = (events.at(-1)?.data as { thread_id: string }).thread_id;
    const { threads } = await client.threads({ limit: 5, q: "kept" });
    expect(threads.map((thread) => [thread.id, thread.preview])).toEqual([[threadId, "say kept"]]);
    const thread = await client.thread(threadId, { turns_limit: 1 });
    expect(thread.turns.map((turn) => [turn.input, turn.items])).toEqual([["say kept", [{ id: "item_0", type: "agent_message", text: "kept" }]]]);
    expect(await client.renameThread(threadId, "Kept")).toMatchObject({ id: threadId, name: "Kept" });
    const { thread_id: forkId } = await client.forkThread(threadId, { turn_id: thread.turns[0]?.id as string });
    expect((await client.thread(forkId)).turns.map((turn) => turn.input)).toEqual(["say kept"]);
    expect(await client.archiveThread(threadId)).toEqual({ id: threadId, archived: true });
    await expect(client.thread(threadId)).rejects.toEqual(new ServerError(404, "thread_not_found", `No codex thread ${threadId} is stored here.`));
  });

  test("cancel ends a running turn", async () => {
    const iterator = client.sendMessage({ message: "sleep 60000 never", id: "client-cancel" })[Symbol.asyncIterator]();
    for (let next = await iterator.next(); !next.done && next.value.type !== "turn.started"; next = await iterator.next()) {}
    expect(await client.cancel("client-cancel")).toEqual({ cancelled: "client-cancel" });
    let last: ClientEvent | undefined;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) last = next.value;
    expect(last?.data).toMatchObject({ status: "cancelled" });
  });
});

describe("CodexServerClient with approvals (app-server engine)", () => {
  test("an approval.requested event, answered with confirm, then approval.resolved", async () => {
    const approving = startTestServer({ engine: "app-server", bypassApprovalsAndSandbox: false, approvalPolicy: "on-request" });
    try {
      const typed = new CodexServerClient({ baseUrl: approving.url });
      const seen: ClientEvent[] = [];
      for await (const event of typed.sendMessage({ message: "escalate echo approved", id: "client-approval" })) {
        seen.push(event);
        if (event.type === "approval.requested") {
          expect(await typed.confirm("client-approval", event.data.approval_id, "approve")).toEqual({ approval_id: event.data.approval_id, decision: "approve" });
        }
      }
      expect(seen.filter((e) => e.type.startsWith("approval.")).map((e) => e.data)).toEqual([
        expect.objectContaining({ type: "approval.requested", kind: "command_execution" }),
        expect.objectContaining({ type: "approval.resolved", decision: "approve", by: "client" }),
      ]);
      expect(seen.at(-1)?.data).toMatchObject({ status: "completed", final_response: "ran: approved" });
    } finally {
      await approving.close();
    }
  }, 30_000);
});
