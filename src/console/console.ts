/**
 * The web console: one page that talks to the same API as any client (POST /messages,
 * GET /runs/{id}[/events], /threads), so it needs nothing the API does not offer. Everything the
 * agent says is untrusted and reaches the page through textContent only.
 */
import type { ThreadItem } from "@openai/codex-sdk";
import type { ApprovalDecision, ApprovalRequestedEvent, ApprovalResolvedEvent, EngineEvent } from "../engine/types";
import type { DoneData, RunSummary, ThreadDetail, ThreadList, ThreadSummary, ThreadTurn, Usage } from "../schemas";
import { type Block, type Inline, parseMarkdown } from "./markdown.js";
import { followRun, type SseMessage, StreamLost } from "./sse.js";
import { relativeTime, threadTitle, turnsBesideRun } from "./threads.js";

const TOKEN_KEY = "codex-http-server:token";
const THREAD_KEY = "codex-http-server:thread";
/** The turn this tab is watching, so that a reload can reattach to it. */
const ACTIVE_KEY = "codex-http-server:active-run";
/** Threads in the list at a time, and turns of a thread. */
const THREADS_PAGE = 20;
const TURNS_PAGE = 20;
/** Where the thread list folds behind its button; console.css has the same width. */
const NARROW = window.matchMedia("(max-width: 720px)");

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
  layout: byId<HTMLElement>("layout"),
  threadsToggle: byId<HTMLButtonElement>("threads-toggle"),
  threads: byId<HTMLElement>("threads"),
  threadSearch: byId<HTMLInputElement>("thread-search"),
  threadList: byId<HTMLUListElement>("thread-list"),
  threadsNote: byId<HTMLElement>("threads-note"),
  threadsMore: byId<HTMLButtonElement>("threads-more"),
  threadBar: byId<HTMLElement>("thread-bar"),
  threadTitle: byId<HTMLElement>("thread-title"),
  threadId: byId<HTMLElement>("thread-id"),
  threadCwd: byId<HTMLElement>("thread-cwd"),
  renameThread: byId<HTMLButtonElement>("rename-thread"),
  archiveThread: byId<HTMLButtonElement>("archive-thread"),
  notice: byId<HTMLElement>("notice"),
  earlierTurns: byId<HTMLButtonElement>("earlier-turns"),
  newThread: byId<HTMLButtonElement>("new-thread"),
  forgetToken: byId<HTMLButtonElement>("forget-token"),
  token: byId<HTMLInputElement>("token"),
  tokenReason: byId<HTMLElement>("token-reason"),
  renameName: byId<HTMLInputElement>("rename-name"),
  archiveName: byId<HTMLElement>("archive-name"),
};

/** A modal form: its dialog, form, Cancel button and the line that says why a submit failed. */
type FormDialog = { dialog: HTMLDialogElement; form: HTMLFormElement; cancel: HTMLButtonElement; error?: HTMLElement };

function formDialog(name: string, withError: boolean): FormDialog {
  return {
    dialog: byId<HTMLDialogElement>(`${name}-dialog`),
    form: byId<HTMLFormElement>(`${name}-form`),
    cancel: byId<HTMLButtonElement>(`${name}-cancel`),
    ...(withError && { error: byId<HTMLElement>(`${name}-error`) }),
  };
}

const dialogs = { token: formDialog("token", false), rename: formDialog("rename", true), archive: formDialog("archive", true) };

// ---- API ------------------------------------------------------------------------------------

class TokenRefused extends Error {}

/**
 * Shows a modal form until it is cancelled (false) or `submit` succeeds (true). `submit` answers
 * why it failed, which the form shows while it stays open, or undefined.
 */
function showForm({ dialog, form, cancel, error }: FormDialog, submit: () => Promise<string | undefined> | string | undefined): Promise<boolean> {
  if (error) error.hidden = true;
  const submitButton = form.querySelector<HTMLButtonElement>("button[type=submit]");
  dialog.showModal();
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      resolve(ok);
    };
    const onSubmit = async (event: Event) => {
      event.preventDefault();
      if (submitButton) submitButton.disabled = true;
      const failure = await submit();
      if (submitButton) submitButton.disabled = false;
      if (failure === undefined) return done(true);
      if (error) {
        error.textContent = failure;
        error.hidden = false;
      }
    };
    const onCancel = (event: Event) => {
      event.preventDefault();
      done(false);
    };
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
  });
}

/** Resolves once the user gave a token (kept in sessionStorage); rejects if they cancel. */
async function askForToken(reason: string): Promise<void> {
  ui.tokenReason.textContent = reason;
  ui.token.value = "";
  const given = await showForm(dialogs.token, () => {
    const token = ui.token.value.trim();
    if (!token) return "";
    sessionStorage.setItem(TOKEN_KEY, token);
    ui.forgetToken.hidden = false;
    return undefined;
  });
  if (!given) throw new TokenRefused("No access token was given.");
}

/** The prompt on screen, which every request that meets a 401 meanwhile waits for. */
let tokenPrompt: Promise<void> | undefined;

/** fetch with the stored bearer token; a 401 asks for a (new) token and tries again. */
async function api(path: string, init: RequestInit = {}): Promise<Response> {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = new Headers(init.headers);
    if (token) headers.set("authorization", `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401) return response;
    // A request sent with the token an earlier prompt has just replaced need not ask again.
    if (sessionStorage.getItem(TOKEN_KEY) !== token) continue;
    tokenPrompt ??= askForToken(
      token
        ? "The server did not accept that token. Check it and try again."
        : "This server requires a bearer token (it was started with --auth-token).",
    ).finally(() => {
      tokenPrompt = undefined;
    });
    await tokenPrompt;
  }
}

const JSON_BODY = { "content-type": "application/json" };

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

function usageParts(usage: Usage | null): HTMLElement[] {
  return usage ? [el("span", "usage", usageText(usage))] : [];
}

const STATUS_TONE: Record<DoneData["status"], "ok" | "bad" | "muted"> = {
  completed: "ok",
  failed: "bad",
  error: "bad",
  timeout: "bad",
  cancelled: "muted",
};

/** A stored turn's status as its footer shows it: codex keeps no more than whether it ended well. */
const STORED_STATUS: Record<ThreadTurn["status"], [text: string, tone: "ok" | "bad" | "busy" | "muted"]> = {
  completed: ["completed", "ok"],
  failed: ["failed", "bad"],
  interrupted: ["interrupted", "muted"],
  in_progress: ["running", "busy"],
};

/** Sends the user's answer to an approval; resolves to why it failed, or undefined. */
type AnswerApproval = (approvalId: string, decision: ApprovalDecision) => Promise<string | undefined>;

const RESOLVED_BY: Record<ApprovalResolvedEvent["by"], string> = {
  client: "",
  timeout: " (nobody answered in time)",
  turn_ended: " (the turn ended)",
};

/**
 * One turn in the transcript: the user's message, then codex's items as they stream in, or as a
 * thread's history stored them (the same items, shown by the same code).
 */
class TurnView {
  readonly root: HTMLElement;
  private readonly body: HTMLElement;
  private readonly items = new Map<string, HTMLElement>();
  private readonly approvals = new Map<string, HTMLElement>();
  private readonly waiting: HTMLElement;
  private footer: HTMLElement | undefined;

  constructor(
    readonly message: string,
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
      case "item.completed":
        this.showItem(event.item, event.type === "item.completed");
        break;
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

  private showItem(item: ThreadItem, final: boolean): void {
    const previous = this.items.get(item.id);
    const next = renderItem(item, previous, final);
    next.dataset.itemType = item.type;
    if (previous) previous.replaceWith(next);
    else this.body.append(next);
    this.items.set(item.id, next);
  }

  /** A turn of a thread's history: its items as their `item.completed` events carried them, then its outcome. */
  showStored(turn: ThreadTurn, threadId: string): void {
    this.waiting.remove();
    for (const item of turn.items) this.showItem(item as ThreadItem, true);
    const [text, tone] = STORED_STATUS[turn.status];
    this.addFooter(turn.status, [badge(text, tone), ...usageParts(turn.usage)]);
    if (turn.status !== "in_progress") this.forkable(threadId, turn.id);
  }

  /** Offers a fork of the thread up to this turn, once the turn's id is known. */
  forkable(threadId: string, turnId: string): void {
    this.root.dataset.turnId = turnId;
    const fork = el("button", "quiet fork", "Fork from here");
    fork.type = "button";
    fork.setAttribute("aria-label", `Fork from here: ${this.message.slice(0, 60)}`);
    fork.dataset.idleOnly = "";
    fork.disabled = current !== undefined;
    fork.addEventListener("click", () => void forkThread(threadId, turnId));
    this.footer?.append(fork);
  }

  private addFooter(status: string, parts: HTMLElement[]): void {
    this.footer = el("footer", `done ${status}`, ...parts);
    this.body.append(this.footer);
    this.root.setAttribute("aria-busy", "false");
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
    const duration = el("span", "duration");
    const error = done.error && done.status !== "cancelled" ? [el("span", "done-error", done.error)] : [];
    this.addFooter(done.status, [badge(done.status, STATUS_TONE[done.status]), duration, ...usageParts(done.usage), ...error]);
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

/** The turn this tab runs or follows; while there is one, nothing that would leave it is offered. */
let current: { runId: string | undefined; view: TurnView } | undefined;

/** The thread the transcript shows, from the moment a turn starts it or it is opened. */
let shownThread: { id: string; summary: ThreadSummary | undefined } | undefined;

/** Where "Load earlier turns" goes on in the shown thread's history; null at its first turn. */
let earlierCursor: string | null = null;

/** Whether the server has /threads (both engines do; an older server has not). */
let threadsAvailable = true;

function announce(text: string): void {
  ui.status.textContent = text;
}

/** What went wrong outside any turn (a thread that cannot be opened, a failed fork); undefined clears it. */
function showNotice(text: string | undefined): void {
  ui.notice.textContent = text ?? "";
  ui.notice.hidden = text === undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

type Answer<T> = { ok: true; body: T } | { ok: false; code: string; message: string };

/** An API call's JSON, or why there is none: the server's error, or the network's. */
async function apiJson<T>(path: string, init?: RequestInit): Promise<Answer<T>> {
  try {
    const response = await api(path, init);
    if (!response.ok) return { ok: false, ...(await errorOf(response)) };
    return { ok: true, body: (await response.json()) as T };
  } catch (err) {
    return { ok: false, code: err instanceof TokenRefused ? "unauthorized" : "network_error", message: messageOf(err) };
  }
}

const threadPath = (threadId: string) => `/threads/${encodeURIComponent(threadId)}`;

function setThread(threadId: string | null, summary?: ThreadSummary): void {
  const changed = threadId !== (shownThread?.id ?? null);
  const known = summary ?? (changed ? undefined : shownThread?.summary);
  shownThread = threadId === null ? undefined : { id: threadId, summary: known };
  if (threadId) sessionStorage.setItem(THREAD_KEY, threadId);
  else sessionStorage.removeItem(THREAD_KEY);
  ui.threadBar.hidden = !threadId;
  // Until codex has listed it, a new thread is called by its first message, which the transcript shows.
  const firstMessage = ui.transcript.querySelector(".turn .user-message .text")?.textContent ?? "";
  ui.threadTitle.textContent = threadTitle(known ?? { name: null, preview: firstMessage });
  ui.threadId.textContent = threadId ?? "";
  ui.threadCwd.textContent = known ? ` · in ${known.cwd}` : "";
  ui.continueField.hidden = !threadId;
  ui.newThread.hidden = !threadId;
  // Only a new thread ticks it again: the user may have unticked it while a turn ran.
  if (changed) ui.continueThread.checked = Boolean(threadId);
  for (const button of ui.threadList.querySelectorAll<HTMLButtonElement>("button[data-thread-id]")) {
    if (button.dataset.threadId === threadId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

function setRunning(running: boolean): void {
  ui.send.disabled = running;
  ui.cancel.hidden = !running;
  ui.cancel.disabled = false;
  for (const button of document.querySelectorAll<HTMLButtonElement>("button[data-idle-only]")) button.disabled = running;
}

function addTurn(view: TurnView): void {
  ui.emptyHint.remove();
  ui.transcript.append(view.root);
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

function clearTranscript(): void {
  for (const turn of ui.transcript.querySelectorAll(".turn")) turn.remove();
  setEarlierCursor(null);
  ui.transcript.append(ui.emptyHint);
}

function setEarlierCursor(cursor: string | null): void {
  earlierCursor = cursor;
  ui.earlierTurns.hidden = cursor === null;
}

function storedTurn(turn: ThreadTurn, threadId: string): TurnView {
  const view = new TurnView(turn.input, "", answerApproval);
  view.showStored(turn, threadId);
  return view;
}

/** Follows new output at the bottom, unless the reader has scrolled up to read something. */
function keepingScroll<T>(update: () => T): T {
  const { scrollHeight, scrollTop, clientHeight } = ui.transcript;
  const atBottom = scrollHeight - scrollTop - clientHeight < 48;
  const result = update();
  if (atBottom) ui.transcript.scrollTop = ui.transcript.scrollHeight;
  return result;
}

// ---- Thread list -------------------------------------------------------------------------------

/** The list as last asked for: its search, where "Load more" goes on, and which answer is awaited. */
const threadList = { query: "", cursor: null as string | null, request: 0 };

function showThreadsNote(text: string | undefined): void {
  ui.threadsNote.textContent = text ?? "";
  ui.threadsNote.hidden = text === undefined;
}

function threadItem(thread: ThreadSummary): HTMLLIElement {
  const time = el("time", undefined, relativeTime(new Date(thread.updated_at), new Date()));
  time.dateTime = thread.updated_at;
  time.title = new Date(thread.updated_at).toLocaleString();
  const meta = el("span", "thread-meta", time);
  if (thread.status === "running") meta.append(badge("running", "busy"));
  const open = el("button", "thread-item", el("span", "thread-name", threadTitle(thread)), meta);
  open.type = "button";
  open.dataset.threadId = thread.id;
  open.dataset.idleOnly = "";
  open.disabled = current !== undefined;
  if (thread.id === shownThread?.id) open.setAttribute("aria-current", "true");
  open.addEventListener("click", () => void pickThread(thread.id));
  return el("li", undefined, open);
}

/**
 * Asks for the list again: as many threads as it shows (at least a page), or with `more` the
 * next page after them. An answer overtaken by a later request is dropped.
 */
async function loadThreads({ more = false, limit = ui.threadList.childElementCount } = {}): Promise<void> {
  if (!threadsAvailable) return;
  const request = ++threadList.request;
  const params = new URLSearchParams({ limit: String(more ? THREADS_PAGE : Math.min(100, Math.max(THREADS_PAGE, limit))) });
  if (threadList.query) params.set("q", threadList.query);
  if (more && threadList.cursor) params.set("cursor", threadList.cursor);
  ui.threadList.setAttribute("aria-busy", "true");
  const answer = await apiJson<ThreadList>(`/threads?${params}`);
  if (request !== threadList.request) return;
  ui.threadList.removeAttribute("aria-busy");
  if (!answer.ok) {
    // A server without the thread routes: the console works as it did before them.
    if (answer.code === "not_found") {
      threadsAvailable = false;
      ui.threads.hidden = ui.threadsToggle.hidden = ui.renameThread.hidden = ui.archiveThread.hidden = true;
    } else showThreadsNote(answer.message);
    return;
  }
  const items = answer.body.threads.map(threadItem);
  if (more) ui.threadList.append(...items);
  else ui.threadList.replaceChildren(...items);
  threadList.cursor = answer.body.next_cursor;
  ui.threadsMore.hidden = threadList.cursor === null;
  showThreadsNote(ui.threadList.childElementCount > 0 ? undefined : threadList.query ? "No thread matches." : "No threads yet.");
}

/** The list's times say "5 min ago": they are told again every minute. */
function updateTimes(): void {
  const now = new Date();
  for (const time of ui.threadList.querySelectorAll("time")) time.textContent = relativeTime(new Date(time.dateTime), now);
}

function setThreadsOpen(open: boolean): void {
  ui.threadsToggle.setAttribute("aria-expanded", String(open));
  ui.layout.classList.toggle("threads-open", open);
}

async function pickThread(threadId: string): Promise<void> {
  if (current) return;
  // On a narrow screen the list folds away over the thread, and focus goes with it to the thread.
  const folded = NARROW.matches;
  setThreadsOpen(false);
  await openThread(threadId);
  if (folded) (ui.threadBar.hidden ? ui.threadsToggle : ui.threadTitle).focus();
}

// ---- Threads -----------------------------------------------------------------------------------

/** Counts the threads asked for, so that only the last one asked for is shown. */
let opening = 0;

/** The run after a reload, if the server still has it, and whether it still runs. */
async function stillThere(run: ActiveRun): Promise<(ActiveRun & { running: boolean }) | undefined> {
  const answer = await apiJson<RunSummary>(`/runs/${encodeURIComponent(run.id)}`);
  if (answer.ok) return { ...run, running: answer.body.status === "running" };
  if (answer.code === "run_not_found") sessionStorage.removeItem(ACTIVE_KEY);
  return undefined;
}

/** The turn running on a thread, found among the server's runs; its message is the thread's newest, running turn. */
async function runningOn(thread: ThreadDetail): Promise<(ActiveRun & { running: boolean }) | undefined> {
  if (thread.status !== "running") return undefined;
  const answer = await apiJson<{ runs: RunSummary[] }>("/runs");
  const run = answer.ok ? answer.body.runs.find((r) => r.thread_id === thread.id && r.status === "running") : undefined;
  if (!run) return undefined;
  const newest = thread.turns.at(-1);
  return { id: run.id, message: newest?.status === "in_progress" ? newest.input : "", workDir: "", running: true };
}

/** A thread without its turns; codex gives a fork no preview until it has a turn of its own, so its first message stands in. */
function summaryOf({ turns, next_cursor, ...summary }: ThreadDetail): ThreadSummary {
  const first = next_cursor === null ? turns[0] : undefined;
  return summary.preview === "" && first ? { ...summary, preview: first.input } : summary;
}

/**
 * Shows a thread: its newest turns (older ones with "Load earlier turns"), then the turn that
 * runs on it, followed live: `run` after a reload, else the one the server's runs show.
 * "failed": the notice says why; "overtaken": the user asked for something else meanwhile.
 */
async function openThread(threadId: string, run?: ActiveRun): Promise<"shown" | "failed" | "overtaken"> {
  const request = ++opening;
  showNotice(undefined);
  const answer = await apiJson<ThreadDetail>(`${threadPath(threadId)}?turns_limit=${TURNS_PAGE}`);
  // Read after the history, so that a turn that ended meanwhile is in it (turnsBesideRun).
  const following = answer.ok ? await (run ? stillThere(run) : runningOn(answer.body)) : undefined;
  if (request !== opening || current) return "overtaken";
  if (!answer.ok) {
    if (!run) {
      showNotice(`That thread cannot be opened: ${answer.message}`);
      return "failed";
    }
    // A thread whose first turn has just started may not be readable yet: its turn still is.
    clearTranscript();
    watchRun(run);
    setThread(threadId);
    return "shown";
  }
  clearTranscript();
  const { turns, next_cursor } = answer.body;
  const summary = summaryOf(answer.body);
  setThread(threadId, summary);
  ui.workDir.value = summary.cwd;
  for (const turn of following ? turnsBesideRun(turns, following) : turns) addTurn(storedTurn(turn, threadId));
  setEarlierCursor(next_cursor);
  if (following) watchRun({ id: following.id, message: following.message, workDir: following.workDir });
  return "shown";
}

async function loadEarlierTurns(): Promise<void> {
  const threadId = shownThread?.id;
  if (!threadId || earlierCursor === null) return;
  const request = opening;
  ui.earlierTurns.disabled = true;
  const answer = await apiJson<ThreadDetail>(`${threadPath(threadId)}?turns_limit=${TURNS_PAGE}&cursor=${encodeURIComponent(earlierCursor)}`);
  ui.earlierTurns.disabled = false;
  if (request !== opening || shownThread?.id !== threadId) return;
  if (!answer.ok) {
    showNotice(`Earlier turns could not be loaded: ${answer.message}`);
    return;
  }
  // The turns the reader sees stay where they are.
  const before = ui.transcript.scrollHeight;
  ui.earlierTurns.after(...answer.body.turns.map((turn) => storedTurn(turn, threadId).root));
  ui.transcript.scrollTop += ui.transcript.scrollHeight - before;
  setEarlierCursor(answer.body.next_cursor);
  if (earlierCursor === null) ui.threadTitle.focus();
}

/** A turn started a new thread: it is the one shown now, and the list gets it. */
function threadStarted(threadId: string): void {
  if (threadId === shownThread?.id) return;
  setThread(threadId);
  void loadThreads();
}

/**
 * After a turn: the list shows where the thread stands, the thread its name, the turn a fork
 * control. Its id is the stored turn's with its message, the newest one no other turn shown has:
 * the next turn may have started (or even ended) before the answer comes.
 */
async function turnEnded(threadId: string, view: TurnView): Promise<void> {
  void loadThreads();
  if (!threadsAvailable) return;
  const answer = await apiJson<ThreadDetail>(`${threadPath(threadId)}?turns_limit=3`);
  if (!answer.ok) return;
  const { turns } = answer.body;
  if (shownThread?.id === threadId) setThread(threadId, summaryOf(answer.body));
  const shown = new Set([...ui.transcript.querySelectorAll<HTMLElement>(".turn[data-turn-id]")].map((turn) => turn.dataset.turnId));
  const stored = turns.findLast((turn) => turn.input === view.message && turn.status !== "in_progress" && !shown.has(turn.id));
  if (stored) view.forkable(threadId, stored.id);
}

async function forkThread(threadId: string, turnId: string): Promise<void> {
  if (current) return;
  showNotice(undefined);
  const answer = await apiJson<{ thread_id: string }>(`${threadPath(threadId)}/fork`, {
    method: "POST",
    headers: JSON_BODY,
    body: JSON.stringify({ turn_id: turnId }),
  });
  if (!answer.ok) {
    showNotice(`The fork failed: ${answer.message}`);
    return;
  }
  void loadThreads();
  if ((await openThread(answer.body.thread_id)) === "shown") {
    announce("Forked into a new thread.");
    ui.threadTitle.focus();
  }
}

async function renameThread(): Promise<void> {
  const threadId = shownThread?.id;
  if (!threadId) return;
  ui.renameName.value = shownThread?.summary?.name ?? "";
  const renamed = await showForm(dialogs.rename, async () => {
    const answer = await apiJson<ThreadSummary>(threadPath(threadId), {
      method: "PATCH",
      headers: JSON_BODY,
      body: JSON.stringify({ name: ui.renameName.value }),
    });
    if (!answer.ok) return answer.message;
    if (shownThread?.id === threadId) setThread(threadId, answer.body);
    return undefined;
  });
  if (!renamed) return;
  announce("Thread renamed.");
  void loadThreads();
}

async function archiveThread(): Promise<void> {
  const thread = shownThread;
  if (!thread || current) return;
  ui.archiveName.textContent = thread.summary ? threadTitle(thread.summary) : thread.id;
  // What refuses it, 409 thread_busy among them, is said in the dialog, which stays open.
  const archived = await showForm(dialogs.archive, async () => {
    const answer = await apiJson<{ archived: true }>(threadPath(thread.id), { method: "DELETE" });
    if (answer.ok) return undefined;
    return answer.code === "thread_busy" ? "A turn is running on this thread. Archive it once that turn has ended." : answer.message;
  });
  if (!archived) return;
  if (shownThread?.id === thread.id) {
    setThread(null);
    clearTranscript();
  }
  announce("Thread archived.");
  void loadThreads();
  ui.message.focus();
}

function newThread(): void {
  if (current) return;
  opening++;
  showNotice(undefined);
  setThread(null);
  clearTranscript();
  ui.message.focus();
}

// ---- Turns -------------------------------------------------------------------------------------

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
      if (message.event === "thread.started") threadStarted((JSON.parse(message.data) as { thread_id: string }).thread_id);
      const done = keepingScroll(() => view.show(message));
      if (done) {
        const threadId = done.thread_id ?? shownThread?.id ?? null;
        setThread(threadId);
        announce(`Turn ${done.status}.`);
        if (threadId) void turnEnded(threadId, view);
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
    view.fail(err instanceof TokenRefused ? "unauthorized" : "network_error", messageOf(err));
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
  const threadId = ui.continueThread.checked ? (shownThread?.id ?? null) : null;
  // A thread being opened would replace this turn when it arrives.
  opening++;
  showNotice(undefined);
  if (!threadId && shownThread) {
    setThread(null);
    clearTranscript();
  }
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
        headers: { ...JSON_BODY, accept: "text/event-stream" },
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
  const answer = await apiJson<unknown>("/messages", {
    method: "POST",
    headers: JSON_BODY,
    body: JSON.stringify({ type: "user_confirm", id: runId, approval_id: approvalId, decision }),
  });
  return answer.ok ? undefined : answer.message;
}

async function cancel(): Promise<void> {
  const runId = current?.runId;
  if (!runId) return;
  ui.cancel.disabled = true;
  announce("Cancelling…");
  const response = await api("/messages", {
    method: "POST",
    headers: JSON_BODY,
    body: JSON.stringify({ type: "user_cancel", id: runId }),
  }).catch(() => undefined);
  // 404 run_not_found: it finished meanwhile; its `done` arrives on the stream either way.
  if (response && !response.ok && response.status !== 404) {
    const { message } = await errorOf(response);
    announce(`Cancel failed: ${message}`);
    ui.cancel.disabled = false;
  }
}

/** Shows a turn from its run's first event, live if it still runs. */
function watchRun(run: ActiveRun): void {
  const view = new TurnView(run.message, run.workDir, answerApproval);
  addTurn(view);
  void runTurn(() => api(`/runs/${encodeURIComponent(run.id)}/events`, { headers: { accept: "text/event-stream" } }), run, view);
}

function savedActiveRun(): ActiveRun | undefined {
  const saved = sessionStorage.getItem(ACTIVE_KEY);
  if (!saved) return undefined;
  try {
    return JSON.parse(saved) as ActiveRun;
  } catch {
    sessionStorage.removeItem(ACTIVE_KEY);
    return undefined;
  }
}

/** After a reload: the thread this tab showed, from its history, and the turn it was watching. */
async function restore(threadId: string | null, active: ActiveRun | undefined): Promise<void> {
  // The user was quicker: a turn sent or a thread opened while the list loaded.
  if (current || opening > 0) return;
  if (threadId && threadsAvailable && (await openThread(threadId, active)) !== "failed") return;
  if (active) watchRun(active);
  // Without the thread routes the id is all there is to continue it with.
  setThread(threadsAvailable ? null : threadId);
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
ui.newThread.addEventListener("click", newThread);
ui.renameThread.addEventListener("click", () => void renameThread());
ui.archiveThread.addEventListener("click", () => void archiveThread());
ui.earlierTurns.addEventListener("click", () => void loadEarlierTurns());
ui.threadsMore.addEventListener("click", async () => {
  const shown = ui.threadList.childElementCount;
  await loadThreads({ more: true });
  // The button may be gone now: focus goes on to the first thread it brought.
  ui.threadList.children[shown]?.querySelector("button")?.focus();
});
ui.threadsToggle.addEventListener("click", () => setThreadsOpen(ui.threadsToggle.getAttribute("aria-expanded") !== "true"));
ui.threads.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && ui.layout.classList.contains("threads-open")) {
    setThreadsOpen(false);
    ui.threadsToggle.focus();
  }
});
let searchTimer: ReturnType<typeof setTimeout> | undefined;
ui.threadSearch.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    threadList.query = ui.threadSearch.value.trim();
    void loadThreads({ limit: THREADS_PAGE });
  }, 250);
});
ui.forgetToken.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  ui.forgetToken.hidden = true;
  announce("Token forgotten.");
});

ui.forgetToken.hidden = sessionStorage.getItem(TOKEN_KEY) === null;
setInterval(updateTimes, 60_000);
const saved = { threadId: sessionStorage.getItem(THREAD_KEY), active: savedActiveRun() };
void loadThreads().then(() => restore(saved.threadId, saved.active));
