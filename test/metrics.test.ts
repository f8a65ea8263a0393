/** /metrics against the real server and codex: a turn is counted. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { routeLabel } from "../src/metrics";
import { readSse, sseReader } from "./fixtures/sse";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { waitFor } from "./fixtures/wait-for";

let server: TestServer;
beforeAll(() => {
  server = startTestServer();
});
afterAll(() => server.close());

const scrape = async () => {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
  return res.text();
};

test("a turn is counted: started, finished by status, durations, events sent, requests by route, what is kept of it", async () => {
  const { frames } = await readSse(await server.send({ type: "user_message", message: "say counted", id: "metered-1" }));
  const text = await scrape();
  expect(text).toContain("\ncodex_turns_started_total 1\n");
  expect(text).toContain('\ncodex_turns_finished_total{status="completed"} 1\n');
  // Without a tokens file every turn is the implicit tenant's, with its done.usage (the scripted model's).
  expect(text).toContain('\ncodex_tenant_turns_total{tenant="default",status="completed"} 1\n');
  expect(text).toContain('\ncodex_tenant_tokens_total{tenant="default",kind="input"} 10\n');
  expect(text).toContain('\ncodex_tenant_tokens_total{tenant="default",kind="output"} 5\n');
  expect(text).toContain("\ncodex_turn_duration_seconds_count 1\n");
  expect(text).toContain("\ncodex_turn_first_event_seconds_count 1\n");
  expect(text).toContain(`\ncodex_sse_events_sent_total ${frames.length}\n`);
  expect(text).toContain('\ncodex_http_requests_total{method="POST",route="/messages",status="200"} 1\n');
  expect(text).toContain("\ncodex_turns_active 0\n");
  expect(text).toContain("\ncodex_retained_runs 1\n");
  expect(text).toContain(`\ncodex_retained_run_bytes ${frames.reduce((sum, frame) => sum + frame.data.length, 0)}\n`);
  // codex may still be exiting after the turn's done; it is counted until it has.
  await waitFor("codex to exit", async () => (await scrape()).includes("\ncodex_processes_active 0\n"));
});

test("while a turn runs: one active turn, one codex process", async () => {
  const stream = sseReader(await server.send({ type: "user_message", message: "sleep 60000 never", id: "metered-2" }));
  await stream.until((f) => f.event === "turn.started");
  const text = await scrape();
  expect(text).toContain("\ncodex_turns_active 1\n");
  expect(text).toContain("\ncodex_processes_active 1\n");
  await fetch(`${server.url}/runs/metered-2`, { method: "DELETE" });
  await stream.rest();
  expect(await scrape()).toContain('\ncodex_turns_finished_total{status="cancelled"} 1\n');
});

test.each([
  ["/health", "/health"],
  ["/runs/abc", "/runs/{id}"],
  ["/runs/abc/events", "/runs/{id}/events"],
  ["/whatever/123", "other"],
])("route label of %p is %p", (path, label) => {
  expect(routeLabel(path)).toBe(label);
});
