/**
 * The web console: one page that talks to the same API as any client (POST /messages,
 * GET /runs/{id}[/events]), so it needs nothing the API does not offer. Everything the agent says
 * is untrusted and reaches the page through textContent only.
 */
import type { ThreadItem } from "@openai/codex-sdk";
import type { ApprovalDecision, ApprovalRequestedEvent, ApprovalResolvedEvent, EngineEvent } from "../engine/types";
import type { DoneData, RunSummary, Usage } from "../schemas";
import { type Block, type Inline, parseMarkdown } from "./markdown.js";
import { followRun, type SseMessage, StreamLost } from "./sse.js";

const TOKEN_KEY = "codex-http-server:token";
const THREAD_KEY = "codex-http-server:thread";
/** The turn this tab is watching, so that a reload can reattach to it. */
const ACTIVE_KEY = "codex-http-server:active-run";

type ActiveRun = { id: string; message: string; workDir: string };
type ApiErrorBody = { error?: { code?: string; message?: string } };

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (className) element.className = className;
  element.append(...children);
  return element;
}

const ui = {
  transcript: byId<HTMLElement>("transcript"),
  emptyHint: byId<HTMLElement>("empty-hint"),
  status: byId<HTMLElement>("status"),
  composer: byId<HTMLFormElement>("composer"),
  message: byId<HTMLTextAreaElement>("message"),
  workDir: byId<HTMLInputElement>("work-dir"),
  continueField: byId<HTMLElement>("continue-field"),
  continueThread: byId<HTMLInputElement>("continue-thread"),
  send: byId<HTMLButtonElement>("send"),
  cancel: byId<HTMLButtonElement>("cancel"),
  threadLabel: byId<HTMLElement>("thread-label"),
  threadId: byId<HTMLElement>("thread-id"),
  newThread: byId<HTMLButtonElement>("new-thread"),
  forgetToken: byId<HTMLButtonElement>("forget-token"),
  tokenDialog: byId<HTMLDialogElement>("token-dialog"),
  tokenForm: byId<HTMLFormElement>("token-form"),
  tokenReason: byId<HTMLElement>("token-reason"),
  token: byId<HTMLInputElement>("token"),
  tokenCancel: byId<HTMLButtonElement>("token-cancel"),
};

// ---- API ------------------------------------------------------------------------------------

class TokenRefused extends Error {}

/** Resolves once the user gave a token (kept in sessionStorage); rejects if they cancel. */
function askForToken(reason: string): Promise<void> {
  ui.tokenReason.textContent = reason;
  ui.token.value = "";
  ui.tokenDialog.showModal();
  return new Promise((resolve, reject) => {
    const done = (ok: boolean) => {
      ui.tokenForm.removeEventListener("submit", onSubmit);
      ui.tokenCancel.removeEventListener("click", onCancel);
      ui.tokenDialog.removeEventListener("cancel", onCancel);
      ui.tokenDialog.close();
      if (ok) resolve();
      else reject(new TokenRefused("No access token was given."));
    };
    const onSubmit = (event: Event) => {
      event.preventDefault();
      const token = ui.token.value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      ui.forgetToken.hidden = false;
      done(true);
    };
    const onCancel = (event: Event) => {
      event.preventDefault();
      done(false);
    };
    ui.tokenForm.addEventListener("submit", onSubmit);
    ui.tokenCancel.addEventListener("click", onCancel);
    ui.tokenDialog.addEventListener("cancel", onCancel);
  });
}

/** fetch with the stored bearer token; a 401 asks for a (new) token and tries again. */
async function api(path: string, init: RequestInit = {}): Promise<Response> {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = new Headers(init.headers);
    if (token) headers.set("authorization", `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401) return response;
    await askForToken(
      token
        ? "The server did not accept that token. Check it and try again."
        : "This server requires a bearer token (it was started with --auth-token).",
    );
  }
}

async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  const body = (await response.json().catch(() => ({}))) as ApiErrorBody;
  return {
    code: body.error?.code ?? `http_${response.status}`,
    message: body.error?.message ?? `The server answered ${response.status} ${response.statusText}.`,
  };
}

// ---- Rendering --------------------------------------------------------------------------------

function renderInline(nodes: Inline[]): Node[] {
  return nodes.map((node) => {
    switch (node.type) {
      case "text":
        return document.createTextNode(node.text);
      case "code":
        return el("code", undefined, node.text);
      case "strong":
        return el("strong", undefined, ...renderInline(node.children));
      case "em":
        return el("em", undefined, ...renderInline(node.children));
      case "link": {
        const a = el("a", undefined, ...renderInline(node.children));
        a.href = node.href;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        return a;
      }
    }
  });
}

function renderMarkdown(text: string): Node[] {
  return parseMarkdown(text).map((block: Block) => {
    switch (block.type) {
      case "paragraph":
        return el("p", undefined, ...renderInline(block.children));
      case "heading":
        return el(`h${Math.min(block.level + 2, 6)}` as "h3", undefined, ...renderInline(block.children));
      case "code": {
        const code = el("code", undefined, block.text);
        if (block.lang) code.dataset.lang = block.lang;
        return el("pre", "code-block", code);
      }
      case "list":
        return el(block.ordered ? "ol" : "ul", undefined, ...block.items.map((item) => el("li", undefined, ...renderInline(item))));
      case "quote":
        return el("blockquote", undefined, ...renderInline(block.children));
    }
  });
}

function badge(text: string, tone: "ok" | "bad" | "busy" | "muted"): HTMLElement {
  return el("span", `badge ${tone}`, text);
}

/** `<details>` whose open/closed state survives re-rendering as the item updates. */
function collapsible(previous: Element | undefined, className: string, summary: Array<Node | string>, body: Node[], open = false): HTMLDetailsElement {
  const details = el("details", className, el("summary", undefined, ...summary), ...body);
  details.open = previous instanceof HTMLDetailsElement ? previous.open : open;
  return details;
}

/** `final`: the item is complete; until then an agent message is shown as plain text as it grows. */
function renderItem(item: ThreadItem, previous: Element | undefined, final: boolean): HTMLElement {
  switch (item.type) {
    case "agent_message":
      // Parsing markdown again at every update of a long streamed answer would cost more and more.
      return final ? el("div", "item agent-message", ...renderMarkdown(item.text)) : el("div", "item agent-message streaming", el("p", undefined, item.text));
    case "reasoning":
      return collapsible(previous, "item reasoning", [el("span", "label", "Reasoning")], renderMarkdown(item.text));
    case "command_execution": {
      // Without an exit code (null from app-server, absent from exec) the status says it all.
      const exitCode: unknown = item.exit_code;
      const state =
        item.status === "in_progress"
          ? badge("running", "busy")
          : exitCode === 0
            ? badge("exit 0", "ok")
            : badge(typeof exitCode === "number" ? `exit ${exitCode}` : item.status, "bad");
      const output = el("pre", "output", item.aggregated_output || "(no output)");
      return collapsible(previous, "item command", [el("span", "label", "Command"), el("code", "cmd", item.command), state], [output]);
    }
    case "file_change":
      return el(
        "div",
        "item file-change",
        el("p", "item-title", el("span", "label", "Files"), item.status === "completed" ? badge("applied", "ok") : badge(item.status, "bad")),
        el("ul", "changes", ...item.changes.map((change) => el("li", undefined, el("span", `kind ${change.kind}`, change.kind), " ", el("code", undefined, change.path)))),
      );
    case "todo_list": {
      const list = el(
        "ul",
        "todo",
        ...item.items.map((todo) => {
          const box = el("input");
          box.type = "checkbox";
          box.checked = todo.completed;
          box.disabled = true;
          box.setAttribute("aria-label", todo.completed ? "done" : "to do");
          return el("li", todo.completed ? "is-done" : undefined, box, el("span", undefined, todo.text));
        }),
      );
      return el("div", "item todo-list", el("p", "item-title", el("span", "label", "Plan")), list);
    }
    case "web_search":
      return el("div", "item web-search", el("span", "label", "Web search"), " ", el("code", undefined, item.query));
    case "mcp_tool_call": {
      const tone = item.status === "completed" ? "ok" : item.status === "failed" ? "bad" : "busy";
      const detail = item.error?.message ?? (item.result ? JSON.stringify(item.result.structured_content ?? item.result.content, null, 2) : "");
      return collapsible(
        previous,
        "item tool-call",
        [el("span", "label", "Tool"), el("code", "cmd", `${item.server}.${item.tool}`), badge(item.status.replace("_", " "), tone)],
        [el("pre", "output", detail || "(no result yet)")],
      );
    }
    case "error":
      // An error item is one codex recovered from (unknown model metadata, a retry): the turn goes on.
      return el("div", "item warning", el("span", "label", "Warning"), " ", item.message);
  }
}

function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function usageText(usage: Usage): string {
  const cached = usage.cached_input_tokens > 0 ? ` (${formatCount(usage.cached_input_tokens)} cached)` : "";
  const reasoning = usage.reasoning_output_tokens > 0 ? `, ${formatCount(usage.reasoning_output_tokens)} reasoning` : "";
  return `${formatCount(usage.input_tokens)} tokens in${cached} · ${formatCount(usage.output_tokens)} out${reasoning}`;
}

const STATUS_TONE: Record<DoneData["status"], "ok" | "bad" | "muted"> = {
  completed: "ok",
  failed: "bad",
  error: "bad",
  timeout: "bad",
  cancelled: "muted",
};

/** Sends the user's answer to an approval; resolves to why it failed, or undefined. */
type AnswerApproval = (approvalId: string, decision: ApprovalDecision) => Promise<string | undefined>;

const RESOLVED_BY: Record<ApprovalResolvedEvent["by"], string> = {
  client: "",
  timeout: " (nobody answered in time)",
  turn_ended: " (the turn ended)",
};

/** One turn in the transcript: the user's message, then codex's items as they stream in. */
class TurnView {
  readonly root: HTMLElement;
  private readonly body: HTMLElement;
  private readonly items = new Map<string, HTMLElement>();
  private readonly approvals = new Map<string, HTMLElement>();
  private readonly waiting: HTMLElement;

  constructor(
    message: string,
    workDir: string,
    private readonly answer: AnswerApproval,
  ) {
    const header = el("div", "user-message", el("p", "who", "You"), el("div", "text", message));
    if (workDir) header.append(el("p", "work-dir", "in ", el("code", undefined, workDir)));
    this.waiting = el("p", "waiting", "Waiting for codex…");
    this.body = el("div", "events", this.waiting);
    this.root = el("article", "turn", header, this.body);
    this.root.setAttribute("aria-busy", "true");
  }

  /** Shows one SSE message; returns the turn's outcome when it is `done`. */
  show(message: SseMessage): DoneData | undefined {
    this.waiting.remove();
    if (message.event === "done") {
      const done = JSON.parse(message.data) as DoneData;
      this.finish(done);
      return done;
    }
    const event = JSON.parse(message.data) as EngineEvent;
    switch (event.type) {
      case "approval.requested":
        this.askApproval(event);
        break;
      case "approval.resolved":
        this.approvalResolved(event);
        break;
      case "item.started":
      case "item.updated":
      case "item.completed": {
        const previous = this.items.get(event.item.id);
        const next = renderItem(event.item, previous, event.type === "item.completed");
        next.dataset.itemType = event.item.type;
        if (previous) previous.replaceWith(next);
        else this.body.append(next);
        this.items.set(event.item.id, next);
        break;
      }
      case "turn.failed":
        this.body.append(el("div", "item error", el("span", "label", "Turn failed"), " ", event.error.message));
        break;
      case "error":
        this.body.append(el("div", "item error", el("span", "label", "Error"), " ", event.message));
        break;
      case "thread.started":
      case "turn.started":
      case "turn.completed":
        break;
      default:
        // Events this page does not know yet (a newer server) still show that they happened.
        this.body.append(el("p", "item note", message.event));
    }
    return undefined;
  }

  /** codex asks before it acts (app-server engine with an approval policy): Approve or Deny. */
  private askApproval(request: ApprovalRequestedEvent): void {
    const what =
      request.kind === "command_execution"
        ? [el("p", undefined, "Run ", el("code", undefined, request.command ?? ""), ...(request.cwd ? [" in ", el("code", undefined, request.cwd)] : []), "?")]
        : [
            el("p", undefined, "Apply these changes?"),
            el("ul", "changes", ...(request.changes ?? []).map((change) => el("li", undefined, el("span", `kind ${change.kind}`, change.kind), " ", el("code", undefined, change.path)))),
          ];
    const state = badge("waiting for you", "busy");
    const approve = el("button", "approve", "Approve");
    const deny = el("button", "danger", "Deny");
    const failure = el("p", "approval-error");
    failure.hidden = true;
    const actions = el("div", "actions", approve, deny);
    const card = el(
      "div",
      "item approval",
      el("p", "item-title", el("span", "label", "Approval"), state),
      ...what,
      ...(request.reason ? [el("p", "reason", request.reason)] : []),
      actions,
      failure,
    );
    card.setAttribute("role", "group");
    card.setAttribute("aria-label", "Approval request");
    const send = async (decision: ApprovalDecision) => {
      approve.disabled = deny.disabled = true;
      failure.hidden = true;
      const error = await this.answer(request.approval_id, decision);
      if (error) {
        failure.textContent = error;
        failure.hidden = false;
        approve.disabled = deny.disabled = false;
      }
    };
    approve.type = deny.type = "button";
    approve.addEventListener("click", () => void send("approve"));
    deny.addEventListener("click", () => void send("deny"));
    this.approvals.set(request.approval_id, card);
    this.body.append(card);
    announce("codex asks for approval.");
    approve.focus({ preventScroll: true });
  }

  private approvalResolved(resolved: ApprovalResolvedEvent): void {
    const card = this.approvals.get(resolved.approval_id);
    if (!card) return;
    const approved = resolved.decision === "approve";
    card.querySelector(".badge")?.replaceWith(badge(`${approved ? "approved" : "denied"}${RESOLVED_BY[resolved.by]}`, approved ? "ok" : "bad"));
    card.querySelector(".actions")?.remove();
    card.classList.add("resolved");
  }

  /** A request that never became a turn, or a stream that broke. */
  fail(code: string, text: string): void {
    this.waiting.remove();
    this.body.append(el("div", "item error", el("span", "label", code), " ", text));
    this.root.setAttribute("aria-busy", "false");
  }

  private finish(done: DoneData): void {
    const footer = el("footer", `done ${done.status}`, badge(done.status, STATUS_TONE[done.status]));
    const duration = el("span", "duration");
    footer.append(duration);
    if (done.usage) footer.append(el("span", "usage", usageText(done.usage)));
    if (done.error && done.status !== "cancelled") footer.append(el("span", "done-error", done.error));
    this.body.append(footer);
    this.root.setAttribute("aria-busy", "false");
    void this.showDuration(done.request_id, duration);
  }

  private async showDuration(runId: string, target: HTMLElement): Promise<void> {
    const response = await api(`/runs/${encodeURIComponent(runId)}`).catch(() => undefined);
    if (!response?.ok) return;
    const run = (await response.json()) as RunSummary;
    if (run.finished_at === null) return;
    target.textContent = formatDuration(Date.parse(run.finished_at) - Date.parse(run.started_at));
  }
}

// ---- State and actions ------------------------------------------------------------------------

let current: { runId: string | undefined; view: TurnView } | undefined;

function announce(text: string): void {
  ui.status.textContent = text;
}

function setThread(threadId: string | null): void {
  if (threadId) sessionStorage.setItem(THREAD_KEY, threadId);
  else sessionStorage.removeItem(THREAD_KEY);
  ui.threadId.textContent = threadId ?? "";
  ui.threadLabel.hidden = !threadId;
  ui.continueField.hidden = !threadId;
  ui.newThread.hidden = !threadId;
  ui.continueThread.checked = Boolean(threadId);
}

function setRunning(running: boolean): void {
  ui.send.disabled = running;
  ui.cancel.hidden = !running;
  ui.cancel.disabled = false;
}

function addTurn(view: TurnView): void {
  ui.emptyHint.remove();
  ui.transcript.append(view.root);
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

/** Follows new output at the bottom, unless the reader has scrolled up to read something. */
function keepingScroll<T>(update: () => T): T {
  const { scrollHeight, scrollTop, clientHeight } = ui.transcript;
  const atBottom = scrollHeight - scrollTop - clientHeight < 48;
  const result = update();
  if (atBottom) ui.transcript.scrollTop = ui.transcript.scrollHeight;
  return result;
}

/** An answer to GET /runs/{id}/events that is no stream: the run is gone, or the token is. */
class RunUnavailable extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/**
 * Shows a turn's events until `done`. A stream that breaks before `done` is picked up again
 * with GET /runs/{id}/events and Last-Event-ID, as the typed client does (both use followRun).
 */
async function follow(runId: string, first: Response, view: TurnView): Promise<void> {
  const reopen = async (lastId: number) => {
    const response = await api(`/runs/${encodeURIComponent(runId)}/events`, {
      headers: { accept: "text/event-stream", ...(lastId > 0 && { "last-event-id": String(lastId) }) },
    });
    if (response.ok) return response;
    const { code, message } = await errorOf(response);
    throw new RunUnavailable(code, message);
  };
  try {
    for await (const message of followRun(first, { reopen, reconnects: 5 })) {
      const done = keepingScroll(() => view.show(message));
      if (done) {
        setThread(done.thread_id ?? sessionStorage.getItem(THREAD_KEY));
        announce(`Turn ${done.status}.`);
        return;
      }
    }
  } catch (err) {
    if (err instanceof RunUnavailable) keepingScroll(() => view.fail(err.code, err.message));
    else if (err instanceof StreamLost) keepingScroll(() => view.fail("stream_lost", "The connection to the server keeps breaking; reload the page to try again."));
    else throw err;
  }
}

/**
 * Runs (or, with `active.id`, follows again) one turn in `view`. A new turn's id is the
 * x-request-id of POST /messages; a followed one's is already known.
 */
async function runTurn(start: () => Promise<Response>, active: Omit<ActiveRun, "id"> & { id?: string }, view: TurnView): Promise<void> {
  current = { runId: active.id, view };
  setRunning(true);
  announce("Turn running.");
  try {
    const response = await start();
    if (!response.ok) {
      const { code, message } = await errorOf(response);
      view.fail(code, message);
      announce(`Request refused: ${message}`);
      return;
    }
    const runId = active.id ?? response.headers.get("x-request-id") ?? "";
    current.runId = runId;
    sessionStorage.setItem(ACTIVE_KEY, JSON.stringify({ ...active, id: runId } satisfies ActiveRun));
    await follow(runId, response, view);
  } catch (err) {
    view.fail(err instanceof TokenRefused ? "unauthorized" : "network_error", err instanceof Error ? err.message : String(err));
  } finally {
    sessionStorage.removeItem(ACTIVE_KEY);
    current = undefined;
    setRunning(false);
  }
}

async function send(): Promise<void> {
  const message = ui.message.value;
  if (current || !message.trim()) {
    if (!message.trim()) ui.message.focus();
    return;
  }
  const workDir = ui.workDir.value.trim();
  const threadId = ui.continueThread.checked ? sessionStorage.getItem(THREAD_KEY) : null;
  if (!threadId) setThread(null);
  const body = {
    type: "user_message",
    message,
    ...(workDir && { work_dir: workDir }),
    ...(threadId && { thread_id: threadId }),
  };
  const view = new TurnView(message, workDir, answerApproval);
  addTurn(view);
  ui.message.value = "";
  await runTurn(
    () =>
      api("/messages", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify(body),
      }),
    { message, workDir },
    view,
  );
  ui.message.focus();
}

/** POSTs the user's decision (user_confirm); the stream's approval.resolved then updates the card. */
async function answerApproval(approvalId: string, decision: ApprovalDecision): Promise<string | undefined> {
  const runId = current?.runId;
  if (!runId) return "This turn is not running any more.";
  try {
    const response = await api("/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "user_confirm", id: runId, approval_id: approvalId, decision }),
    });
    return response.ok ? undefined : (await errorOf(response)).message;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

async function cancel(): Promise<void> {
  const runId = current?.runId;
  if (!runId) return;
  ui.cancel.disabled = true;
  announce("Cancelling…");
  const response = await api("/messages", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: "user_cancel", id: runId }),
  }).catch(() => undefined);
  // 404 run_not_found: it finished meanwhile; its `done` arrives on the stream either way.
  if (response && !response.ok && response.status !== 404) {
    const { message } = await errorOf(response);
    announce(`Cancel failed: ${message}`);
    ui.cancel.disabled = false;
  }
}

/** After a reload: show the turn this tab was watching, from its first event, live if it still runs. */
async function reattach(): Promise<void> {
  const saved = sessionStorage.getItem(ACTIVE_KEY);
  if (!saved) return;
  let active: ActiveRun;
  try {
    active = JSON.parse(saved) as ActiveRun;
  } catch {
    sessionStorage.removeItem(ACTIVE_KEY);
    return;
  }
  const view = new TurnView(active.message, active.workDir, answerApproval);
  addTurn(view);
  await runTurn(() => api(`/runs/${encodeURIComponent(active.id)}/events`, { headers: { accept: "text/event-stream" } }), active, view);
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  void send();
});
ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    void send();
  }
});
ui.cancel.addEventListener("click", () => void cancel());
ui.newThread.addEventListener("click", () => {
  setThread(null);
  ui.message.focus();
});
ui.forgetToken.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  ui.forgetToken.hidden = true;
  announce("Token forgotten.");
});

setThread(sessionStorage.getItem(THREAD_KEY));
ui.forgetToken.hidden = sessionStorage.getItem(TOKEN_KEY) === null;
void reattach();
