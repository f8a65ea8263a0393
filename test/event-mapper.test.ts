/**
 * The mapper on notifications the scripted model cannot make codex send (file changes, plans,
 * reasoning, failures without details), checked against what `codex exec` emits for them.
 */
import { describe, expect, test } from "bun:test";
import { TurnEventMapper } from "../src/engine/app-server/event-mapper";
import type { ServerNotification, ThreadItem } from "../src/engine/app-server/protocol";
import type { EngineEvent, ThreadEvent } from "../src/engine/types";
import { waitFor } from "./fixtures/wait-for";

const ids = { threadId: "t", turnId: "u" };
const started = (item: ThreadItem) => ({ method: "item/started", params: { item, ...ids, startedAtMs: 0 } }) as ServerNotification;
const completed = (item: ThreadItem) => ({ method: "item/completed", params: { item, ...ids, completedAtMs: 0 } }) as ServerNotification;
const turnCompleted = (status: string, items: ThreadItem[] = [], error: unknown = null) =>
  ({ method: "turn/completed", params: { threadId: "t", turn: { id: "u", items, status, error } } }) as unknown as ServerNotification;

const patch = (status: string): ThreadItem =>
  ({
    type: "fileChange",
    id: "call_9",
    status,
    changes: [
      { path: "/w/a.txt", kind: { type: "add" }, diff: "+a" },
      { path: "/w/b.txt", kind: { type: "update", move_path: null }, diff: "-b\n+c" },
    ],
  }) as ThreadItem;

function run(notifications: ServerNotification[]) {
  const events: EngineEvent[] = [];
  const mapper = new TurnEventMapper((event) => events.push(event));
  let ended = false;
  for (const notification of notifications) {
    const mapped = mapper.map(notification);
    events.push(...mapped.events);
    ended = mapped.ended;
  }
  return { events, ended };
}

describe("TurnEventMapper", () => {
  test("a file change: started, then completed under the same id, kinds flattened", () => {
    const changes = [
      { path: "/w/a.txt", kind: "add" },
      { path: "/w/b.txt", kind: "update" },
    ];
    // The SDK's type names only completed and failed; exec reports a patch being applied as in_progress.
    expect(run([started(patch("inProgress")), completed(patch("completed"))]).events as unknown[]).toEqual([
      { type: "item.started", item: { id: "item_0", type: "file_change", changes, status: "in_progress" } },
      { type: "item.completed", item: { id: "item_0", type: "file_change", changes, status: "completed" } },
    ]);
  });

  test("a declined patch reads as failed, as exec reports it", () => {
    expect(run([completed(patch("declined"))]).events).toEqual([
      { type: "item.completed", item: expect.objectContaining({ id: "item_0", type: "file_change", status: "failed" }) },
    ]);
  });

  test("a plan becomes one todo_list item: started, updated, completed when the turn ends", () => {
    const plan = (done: boolean) =>
      ({
        method: "turn/plan/updated",
        params: { ...ids, explanation: null, plan: [{ step: "look", status: done ? "completed" : "inProgress" }, { step: "fix", status: "pending" }] },
      }) as ServerNotification;
    const items = (done: boolean) => [
      { text: "look", completed: done },
      { text: "fix", completed: false },
    ];
    const { events, ended } = run([plan(false), plan(true), turnCompleted("interrupted")]);
    expect(events).toEqual([
      { type: "item.started", item: { id: "item_0", type: "todo_list", items: items(false) } },
      { type: "item.updated", item: { id: "item_0", type: "todo_list", items: items(true) } },
      { type: "item.completed", item: { id: "item_0", type: "todo_list", items: items(true) } },
    ]);
    expect(ended).toBe(true);
  });

  test("reasoning: its summary as text; an empty one is left out and uses no id", () => {
    const reasoning = (summary: string[]) => ({ type: "reasoning", id: "r", summary, content: [] }) as ThreadItem;
    expect(run([completed(reasoning([" "])), completed(reasoning(["first", "second"]))]).events).toEqual([
      { type: "item.completed", item: { id: "item_0", type: "reasoning", text: "first\nsecond" } },
    ]);
  });

  test("the turn's diff: a turn.diff each time it changes, never twice the same, nor an empty one first", () => {
    const diffUpdated = (diff: string) => ({ method: "turn/diff/updated", params: { ...ids, diff } }) as ServerNotification;
    const added = "diff --git a/a.txt b/a.txt\n+a\n";
    const both = `${added}diff --git a/b.txt b/b.txt\n+b\n`;
    expect(run([diffUpdated(""), diffUpdated(added), diffUpdated(added), diffUpdated(both), diffUpdated(both), diffUpdated("")]).events).toEqual([
      { type: "turn.diff", diff: added },
      { type: "turn.diff", diff: both },
      { type: "turn.diff", diff: "" },
    ]);
  });

  test("a failed turn without an error of its own reports the last error event", () => {
    const error = {
      method: "error",
      params: { ...ids, willRetry: false, error: { message: "boom", codexErrorInfo: null, additionalDetails: "details", misalignment: null } },
    } as ServerNotification;
    expect(run([error, turnCompleted("failed")]).events).toEqual([
      { type: "error", message: "boom (details)" },
      { type: "turn.failed", error: { message: "boom (details)" } },
    ]);
  });

  test("a command the user declined reads as failed: the SDK knows no declined", () => {
    const command = { type: "commandExecution", id: "c", command: "touch x", cwd: "/", status: "declined", aggregatedOutput: null, exitCode: null, commandActions: [] };
    expect(run([completed(command as unknown as ThreadItem)]).events as unknown[]).toEqual([
      { type: "item.completed", item: { id: "item_0", type: "command_execution", command: "touch x", aggregated_output: "", exit_code: null, status: "failed" } },
    ]);
  });

  test("agent-message deltas: one item.updated at once, the rest coalesced into one per interval; completing cancels what is held", async () => {
    const late: ThreadEvent[] = [];
    const mapper = new TurnEventMapper((event) => late.push(event), 300);
    const delta = (itemId: string, text: string) => ({ method: "item/agentMessage/delta", params: { ...ids, itemId, delta: text } }) as ServerNotification;
    const update = (id: string, text: string): ThreadEvent => ({ type: "item.updated", item: { id, type: "agent_message", text } });
    const words = Array.from({ length: 1_000 }, (_, i) => `w${i} `);

    const atOnce = words.flatMap((word) => mapper.map(delta("a", word)).events);
    expect(atOnce).toEqual([update("item_0", "w0 ")]);
    await waitFor("the held-back text", () => late.length > 0);
    expect(late).toEqual([update("item_0", words.join(""))]);

    // Within the interval of that update: held, then completed before the timer fires.
    expect(mapper.map(delta("a", "end")).events).toEqual([]);
    const message = { type: "agentMessage", id: "a", text: `${words.join("")}end`, phase: null, memoryCitation: null } as ThreadItem;
    expect(mapper.map(completed(message)).events).toEqual([{ type: "item.completed", item: { id: "item_0", type: "agent_message", text: `${words.join("")}end` } }]);
    // Another message's held text is sent after the cancelled one would have been: only it comes.
    expect(mapper.map(delta("b", "x")).events).toEqual([update("item_1", "x")]);
    expect(mapper.map(delta("b", "y")).events).toEqual([]);
    await waitFor("b's held-back text", () => late.length > 1);
    expect(late).toEqual([update("item_0", words.join("")), update("item_1", "xy")]);
  });

  test("an item still running when the turn ends is completed with it", () => {
    const command = (status: string) =>
      ({ type: "commandExecution", id: "c", command: "sleep 9", cwd: "/", status, aggregatedOutput: null, exitCode: null, commandActions: [] }) as unknown as ThreadItem;
    const { events } = run([started(command("inProgress")), turnCompleted("interrupted", [command("failed")])]);
    expect(events.map((event) => [event.type, "item" in event ? event.item.id : null])).toEqual([
      ["item.started", "item_0"],
      ["item.completed", "item_0"],
    ]);
  });
});
