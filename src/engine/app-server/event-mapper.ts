import type { ThreadEvent } from "../types";
import type { ServerNotification, ThreadItem, ThreadTokenUsage } from "./protocol";

type SdkItem = Extract<ThreadEvent, { type: "item.completed" }>["item"];
type TodoItem = { text: string; completed: boolean };
/** An agent message being written: its text so far, when it was last sent, and a send still to come. */
type AgentText = { text: string; sentAt: number; flush: ReturnType<typeof setTimeout> | undefined };

/**
 * Each `item.updated` of an agent message carries its whole text so far, so one per delta would
 * make a long answer cost O(n²) bytes and push earlier events out of the replay log.
 */
const AGENT_TEXT_INTERVAL_MS = 100;

/** `message (details)`, as `codex exec` words an error that has details. */
function withDetails(message: string, details: string | null | undefined): string {
  return details ? `${message} (${details})` : message;
}

/**
 * One turn's app-server notifications as the SDK's ThreadEvents, the way `codex exec --json`
 * turns the same notifications into its output (codex-rs/exec, event_processor_with_jsonl_output):
 * item ids `item_0`, `item_1`, ... in the order exec numbers them, the same items left out, the
 * usage taken from the thread's token totals. A client sees the same events from either engine;
 * only agent-message deltas are extra, as `item.updated` with the text so far, at most one per
 * message every `intervalMs`: a text held back is sent by a timer, through `late`, unless the
 * message completes first.
 */
export class TurnEventMapper {
  private nextId = 0;
  /** app-server item id → the id this turn gave it, while the item runs. */
  private readonly ids = new Map<string, string>();
  private readonly agentText = new Map<string, AgentText>();
  private usage: ThreadTokenUsage | undefined;
  private lastError: string | undefined;
  private todo: { id: string; items: TodoItem[] } | undefined;

  constructor(
    private readonly late: (event: ThreadEvent) => void,
    private readonly intervalMs = AGENT_TEXT_INTERVAL_MS,
  ) {}

  /** The turn is over: no held-back text may be sent after its end. */
  dispose(): void {
    for (const entry of this.agentText.values()) clearTimeout(entry.flush);
    this.agentText.clear();
  }

  private newId(): string {
    return `item_${this.nextId++}`;
  }

  private startedId(rawId: string): string {
    let id = this.ids.get(rawId);
    if (id === undefined) {
      id = this.newId();
      this.ids.set(rawId, id);
    }
    return id;
  }

  private completedId(rawId: string): string {
    const id = this.ids.get(rawId) ?? this.newId();
    this.ids.delete(rawId);
    return id;
  }

  /** A warning codex reports about the thread, as exec reports it: a completed `error` item. */
  warning(message: string): ThreadEvent {
    return { type: "item.completed", item: { id: this.newId(), type: "error", message } };
  }

  private agentUpdate(itemId: string, entry: AgentText): ThreadEvent {
    entry.sentAt = performance.now();
    return { type: "item.updated", item: { id: this.startedId(itemId), type: "agent_message", text: entry.text } };
  }

  /** The events for `notification`, and whether the turn is over. */
  map(notification: ServerNotification): { events: ThreadEvent[]; ended: boolean } {
    const events: ThreadEvent[] = [];
    switch (notification.method) {
      case "turn/started":
        events.push({ type: "turn.started" });
        break;
      case "error": {
        const message = withDetails(notification.params.error.message, notification.params.error.additionalDetails);
        this.lastError = message;
        events.push({ type: "error", message });
        break;
      }
      case "warning":
        events.push(this.warning(notification.params.message));
        break;
      case "deprecationNotice":
        events.push(this.warning(withDetails(notification.params.summary, notification.params.details)));
        break;
      case "model/rerouted": {
        const { fromModel, toModel, reason } = notification.params;
        events.push(this.warning(`model rerouted: ${fromModel} -> ${toModel} (${reason})`));
        break;
      }
      case "item/started": {
        const { item } = notification.params;
        if (item.type === "agentMessage" || item.type === "reasoning") break;
        const again = item.type === "fileChange" && this.ids.has(item.id);
        const mapped = toSdkItem(item, () => this.startedId(item.id));
        if (mapped) events.push({ type: again ? "item.updated" : "item.started", item: mapped });
        break;
      }
      case "item/completed": {
        const { item } = notification.params;
        // Like exec, a message or reasoning gets its id when it completes, unless deltas gave it one.
        const fresh = item.type === "reasoning" || (item.type === "agentMessage" && !this.ids.has(item.id));
        const mapped = toSdkItem(item, () => (fresh ? this.newId() : this.completedId(item.id)));
        if (mapped) events.push({ type: "item.completed", item: mapped });
        clearTimeout(this.agentText.get(item.id)?.flush);
        this.agentText.delete(item.id);
        break;
      }
      case "item/agentMessage/delta": {
        const { itemId, delta } = notification.params;
        const entry = this.agentText.get(itemId) ?? { text: "", sentAt: Number.NEGATIVE_INFINITY, flush: undefined };
        this.agentText.set(itemId, entry);
        entry.text += delta;
        if (entry.flush !== undefined) break;
        const wait = entry.sentAt + this.intervalMs - performance.now();
        if (wait <= 0) {
          events.push(this.agentUpdate(itemId, entry));
        } else {
          entry.flush = setTimeout(() => {
            entry.flush = undefined;
            this.late(this.agentUpdate(itemId, entry));
          }, wait);
        }
        break;
      }
      case "item/fileChange/patchUpdated": {
        const { itemId, changes } = notification.params;
        const mapped = toSdkItem({ type: "fileChange", id: itemId, changes, status: "inProgress" }, () => this.startedId(itemId));
        if (mapped) events.push({ type: "item.updated", item: mapped });
        break;
      }
      case "turn/plan/updated": {
        const items = notification.params.plan.map((step) => ({ text: step.step, completed: step.status === "completed" }));
        if (this.todo) {
          this.todo.items = items;
          events.push({ type: "item.updated", item: { id: this.todo.id, type: "todo_list", items } });
        } else {
          this.todo = { id: this.newId(), items };
          events.push({ type: "item.started", item: { id: this.todo.id, type: "todo_list", items } });
        }
        break;
      }
      case "thread/tokenUsage/updated":
        this.usage = notification.params.tokenUsage;
        break;
      case "turn/completed": {
        const { turn } = notification.params;
        this.dispose();
        if (this.todo) {
          events.push({ type: "item.completed", item: { id: this.todo.id, type: "todo_list", items: this.todo.items } });
          this.todo = undefined;
        }
        for (const item of turn.items) {
          if (!this.ids.has(item.id)) continue;
          const mapped = toSdkItem(item, () => this.completedId(item.id));
          if (mapped) events.push({ type: "item.completed", item: mapped });
        }
        if (turn.status === "completed") {
          const total = this.usage?.total;
          events.push({
            type: "turn.completed",
            usage: {
              input_tokens: total?.inputTokens ?? 0,
              cached_input_tokens: total?.cachedInputTokens ?? 0,
              cache_write_input_tokens: total?.cacheWriteInputTokens ?? 0,
              output_tokens: total?.outputTokens ?? 0,
              reasoning_output_tokens: total?.reasoningOutputTokens ?? 0,
            },
          });
        } else if (turn.status === "failed") {
          const message = turn.error ? withDetails(turn.error.message, turn.error.additionalDetails) : (this.lastError ?? "turn failed");
          events.push({ type: "turn.failed", error: { message } });
        }
        return { events, ended: turn.status !== "inProgress" };
      }
    }
    return { events, ended: false };
  }
}

/**
 * An app-server item as the SDK's item, or undefined for kinds that `codex exec` leaves out;
 * `makeId` is called only for an item that is kept, so that left-out items use up no number.
 */
export function toSdkItem(item: ThreadItem, makeId: () => string): SdkItem | undefined {
  switch (item.type) {
    case "agentMessage":
      return { id: makeId(), type: "agent_message", text: item.text };
    case "reasoning": {
      const text = item.summary.join("\n");
      return text.trim() === "" ? undefined : { id: makeId(), type: "reasoning", text };
    }
    case "commandExecution":
      return {
        id: makeId(),
        type: "command_execution",
        command: item.command,
        aggregated_output: item.aggregatedOutput ?? "",
        // exec writes `null` while the command runs; the SDK's type calls it optional.
        exit_code: item.exitCode as number,
        // The SDK knows no "declined": a command the user refused did not succeed, like a refused patch.
        status: item.status === "inProgress" ? "in_progress" : item.status === "declined" ? "failed" : item.status,
      };
    case "fileChange":
      return {
        id: makeId(),
        type: "file_change",
        changes: item.changes.map((change) => ({ path: change.path, kind: change.kind.type })),
        // exec reports a declined patch as failed, and one in progress as in_progress.
        status: (item.status === "inProgress" ? "in_progress" : item.status === "declined" ? "failed" : item.status) as "completed" | "failed",
      };
    case "mcpToolCall":
      return {
        id: makeId(),
        type: "mcp_tool_call",
        server: item.server,
        tool: item.tool,
        arguments: item.arguments,
        ...(item.result && { result: { content: item.result.content as never, structured_content: item.result.structuredContent } }),
        ...(item.error && { error: { message: item.error.message } }),
        status: item.status === "inProgress" ? "in_progress" : item.status,
      };
    case "webSearch":
      return { id: makeId(), type: "web_search", query: item.query };
    default:
      return undefined;
  }
}
