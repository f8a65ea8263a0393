/**
 * The web console in a real browser (Debian's chromium through playwright-core), against the real
 * server running the real codex with the scripted model.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import type { EngineEvent, ThreadEvent } from "../src/engine/types";
import { readTokensFile } from "../src/tenants/tokens-file";
import { setup } from "./fixtures/app-setup";
import { findChromium, launchChromium, pageErrors } from "./fixtures/browser";
import { type FakeStoredThread, fakeEngine, fakeThreadStore, heldTurn, USAGE } from "./fixtures/fake-engine";
import { turnProcessesUnder } from "./fixtures/processes";
import { as, type TenantName, TOKENS, writeTokensFile } from "./fixtures/tenants";
import { startTestServer, type TestServer } from "./fixtures/test-server";
import { waitFor } from "./fixtures/wait-for";

const ARTIFACTS = join(import.meta.dir, "..", "test-artifacts");
/**
 * Two names that resolve to this machine, as a DNS rebinding would make attacker.example do:
 * codex.test is listed in --allowed-hosts where a test says so, rebound.test never is.
 */
const RESOLVE_TO_LOOPBACK = "--host-resolver-rules=MAP codex.test 127.0.0.1, MAP rebound.test 127.0.0.1";
// A browser and a codex turn per test: seconds each, more on a loaded CI machine.
setDefaultTimeout(60_000);
const chromiumPath = findChromium();
if (!chromiumPath) {
  // CI installs chromium (.ci/run), so there a missing browser is a failure, not a skip.
  if (process.env.CI === "true") throw new Error("chromium is not installed: apt-get install chromium, or set CHROMIUM_PATH");
  console.warn("console-browser.test.ts skipped: no chromium (apt-get install chromium, or set CHROMIUM_PATH)");
}

describe.skipIf(!chromiumPath)("web console in chromium", () => {
  let browser: Browser;
  let server: TestServer;
  let page: Page;
  let errors: string[];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium(chromiumPath as string, [RESOLVE_TO_LOOPBACK]);
    // A reload reattaches only while the turn waits for a client.
    server = startTestServer({ reattachGraceMs: 30_000 });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function openConsole(url = server.url, viewport = { width: 1000, height: 800 }): Promise<Page> {
    page = await browser.newPage({ viewport });
    errors = pageErrors(page);
    await page.goto(`${url}/`);
    return page;
  }

  async function closeConsole(): Promise<void> {
    expect(errors).toEqual([]);
    await page.close();
  }

  /** The id of the turn the page is running, once it has saved it for a reload. */
  async function activeRunId(): Promise<string> {
    const saved = await waitFor("the run id", () => page.evaluate(() => sessionStorage.getItem("codex-http-server:active-run")));
    return (JSON.parse(saved) as { id: string }).id;
  }

  /** The last turn's `done` footer, once there is one. */
  async function lastDone(): Promise<string> {
    const footer = page.locator(".turn").last().locator("footer.done");
    await footer.waitFor({ timeout: 20_000 });
    return (await footer.locator(".badge").textContent()) ?? "";
  }

  test("Ctrl+Enter sends; the answer streams in as markdown; done shows status, tokens and duration", async () => {
    await openConsole();
    // No thread yet: nothing to continue, no thread to show.
    expect(await page.getByLabel("Continue thread").isVisible()).toBe(false);
    expect(await page.locator("#thread-label").isVisible()).toBe(false);
    await page.getByLabel("Message").fill("say Hello from **codex**, see `README.md`");
    await page.getByLabel("Message").press("Control+Enter");
    expect(await lastDone()).toBe("completed");
    const answer = page.locator(".turn .agent-message");
    expect(await answer.textContent()).toBe("Hello from codex, see README.md");
    expect(await answer.locator("strong").textContent()).toBe("codex");
    expect(await answer.locator("code").textContent()).toBe("README.md");
    expect(await page.locator(".turn .user-message .text").textContent()).toBe("say Hello from **codex**, see `README.md`");
    expect(await page.locator("footer.done .usage").textContent()).toBe("10 tokens in · 5 out");
    expect(await page.locator(".turn .item.error").count()).toBe(0);
    // codex's own notice that it knows nothing about the scripted model: an error item, not fatal.
    expect(await page.locator(".turn .item.warning .label").allTextContents()).toEqual(["Warning"]);
    await waitFor("the duration", async () => /^\d+(\.\d)? (ms|s)$/.test((await page.locator("footer.done .duration").textContent()) ?? ""));
    // The thread is offered for the next message.
    const threadId = await page.locator("#thread-id").textContent();
    expect(threadId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await page.getByLabel("Continue thread").isChecked()).toBe(true);
    expect(await page.getByLabel("Message").inputValue()).toBe("");
    expect(await page.locator("#send").isEnabled()).toBe(true);
    expect(await page.locator("#cancel").isHidden()).toBe(true);
    await closeConsole();
  });

  test("a run turn shows the command, its exit code and its output (collapsed until opened)", async () => {
    const workDir = realpathSync(server.home.dir);
    await openConsole();
    await page.getByLabel("Message").fill("run echo console-check && pwd");
    await page.getByLabel("Work directory").fill(workDir);
    await page.getByRole("button", { name: "Send" }).click();
    expect(await lastDone()).toBe("completed");
    const command = page.locator(".turn details.command");
    expect(await command.locator("summary .cmd").textContent()).toContain("echo console-check && pwd");
    expect(await command.locator("summary .badge").textContent()).toBe("exit 0");
    const output = command.locator("pre.output");
    expect(await output.isVisible()).toBe(false);
    await command.locator("summary").click();
    expect(await output.isVisible()).toBe(true);
    expect(await output.textContent()).toBe(`console-check\n${workDir}\n`);
    expect(await page.locator(".turn .agent-message").textContent()).toBe(`ran: console-check\n${workDir}`);
    expect(await page.locator(".turn .work-dir code").textContent()).toBe(workDir);
    await page.screenshot({ path: join(ARTIFACTS, "console-command.png"), fullPage: true });
    await closeConsole();
  });

  test("codex's reasoning arrives collapsed, and opens on a click", async () => {
    await openConsole();
    await page.getByLabel("Message").fill("think about the tests");
    await page.getByLabel("Message").press("Control+Enter");
    expect(await lastDone()).toBe("completed");
    const reasoning = page.locator(".turn details.reasoning");
    expect(await reasoning.locator("summary").textContent()).toBe("Reasoning");
    expect(await reasoning.locator("p").isVisible()).toBe(false);
    await reasoning.locator("summary").click();
    expect(await reasoning.locator("p").textContent()).toBe("Thinking about about the tests");
    expect(await page.locator(".turn .agent-message").textContent()).toBe("about the tests");
    await closeConsole();
  });

  test("Continue thread sends the next message on the same thread; New thread starts over", async () => {
    await openConsole();
    const message = page.getByLabel("Message");
    await message.fill("say first");
    await message.press("Control+Enter");
    await lastDone();
    const threadId = await page.locator("#thread-id").textContent();
    await message.fill("count");
    await message.press("Control+Enter");
    await waitFor("the second turn's done", () => page.locator("footer.done").count().then((n) => n === 2));
    // `count` answers how many user messages the model saw: the first turn's and this one.
    expect(await page.locator(".turn").last().locator(".agent-message").textContent()).toBe("2");
    expect(await page.locator("#thread-id").textContent()).toBe(threadId);
    await page.getByRole("button", { name: "New thread" }).click();
    expect(await page.locator("#thread-label").isHidden()).toBe(true);
    expect(await page.locator(".turn").count()).toBe(0);
    await message.fill("count");
    await message.press("Control+Enter");
    expect(await lastDone()).toBe("completed");
    expect(await page.locator(".turn .agent-message").textContent()).toBe("1");
    expect(await page.locator("#thread-id").textContent()).not.toBe(threadId);
    await closeConsole();
  });

  test("Cancel ends a slow turn as cancelled, and no codex is left", async () => {
    await openConsole();
    await page.getByLabel("Message").fill("sleep 60000 never said");
    await page.getByRole("button", { name: "Send" }).click();
    const cancel = page.getByRole("button", { name: "Cancel" });
    await cancel.waitFor({ state: "visible" });
    await waitFor("the run id", () => page.evaluate(() => sessionStorage.getItem("codex-http-server:active-run")));
    // The turn's codex: the thread list's `codex app-server` stays for the server's lifetime.
    await waitFor("codex running", () => turnProcessesUnder(process.pid).length > 0, 20_000);
    await cancel.click();
    expect(await lastDone()).toBe("cancelled");
    expect(await page.locator(".turn .agent-message").count()).toBe(0);
    expect(await cancel.isHidden()).toBe(true);
    expect(await page.locator("#send").isEnabled()).toBe(true);
    await waitFor("no codex left", () => turnProcessesUnder(process.pid).length === 0, 10_000);
    await closeConsole();
  });

  test("a reload reattaches to the running turn and sees it finish", async () => {
    await openConsole();
    await page.getByLabel("Message").fill("sleep 1500 finished while reloading");
    await page.getByRole("button", { name: "Send" }).click();
    const runId = await activeRunId();
    await page.reload();
    expect(await lastDone()).toBe("completed");
    expect(await page.locator(".turn").count()).toBe(1);
    expect(await page.locator(".turn .user-message .text").textContent()).toBe("sleep 1500 finished while reloading");
    expect(await page.locator(".turn .agent-message").textContent()).toBe("finished while reloading");
    const run = (await (await fetch(`${server.url}/runs/${runId}`)).json()) as { status: string };
    expect(run.status).toBe("completed");
    expect(await page.evaluate(() => sessionStorage.getItem("codex-http-server:active-run"))).toBeNull();
    await closeConsole();
  });

  test("after a reload, Cancel still cancels that turn, and a second reload still finds it", async () => {
    await openConsole();
    await page.getByLabel("Message").fill("sleep 60000 never said");
    await page.getByRole("button", { name: "Send" }).click();
    const runId = await activeRunId();
    await page.reload();
    await page.locator(".turn .user-message").waitFor();
    await page.reload();
    await page.locator(".turn .user-message").waitFor();
    expect(JSON.parse((await page.evaluate(() => sessionStorage.getItem("codex-http-server:active-run"))) ?? "{}").id).toBe(runId);
    await page.getByRole("button", { name: "Cancel" }).click();
    expect(await lastDone()).toBe("cancelled");
    expect(((await (await fetch(`${server.url}/runs/${runId}`)).json()) as { status: string }).status).toBe("cancelled");
    await closeConsole();
  });

  test("a failed turn is shown in red: the reason, and done status failed", async () => {
    await openConsole();
    await page.getByLabel("Message").fill("unauthorized");
    await page.getByRole("button", { name: "Send" }).click();
    expect(await lastDone()).toBe("failed");
    const failures = page.locator(".turn .item.error");
    expect(await failures.locator(".label").allTextContents()).toEqual(["Error", "Turn failed"]);
    expect(await failures.last().textContent()).toContain("401 Unauthorized: Incorrect API key provided.");
    expect(await page.locator("footer.done .done-error").textContent()).toStartWith("the model provider refused codex's credentials (401): run `codex login`");
    await closeConsole();
  });

  test("a refused request is shown as an error, with the server's code and message", async () => {
    await openConsole();
    await page.getByLabel("Message").fill("say hi");
    await page.getByLabel("Work directory").fill("relative/dir");
    await page.getByRole("button", { name: "Send" }).click();
    const error = page.locator(".turn .item.error");
    await error.waitFor();
    expect(await error.textContent()).toBe("invalid_request work_dir: must be an absolute path");
    expect(await page.locator("#send").isEnabled()).toBe(true);
    await closeConsole();
  });

  test("readable at 375 px: nothing overflows sideways; every control has a label", async () => {
    await openConsole(server.url, { width: 375, height: 740 });
    await page.getByLabel("Message").fill("run printf 'a-rather-long-line-of-output-that-must-wrap-instead-of-widening-the-page-%s' x");
    await page.getByRole("button", { name: "Send" }).click();
    expect(await lastDone()).toBe("completed");
    await page.locator(".turn details.command summary").click();
    // Strings, not functions: they run in the page, and this project's types know no DOM.
    const widths = await page.evaluate<{ page: number; viewport: number }>(
      "({ page: document.documentElement.scrollWidth, viewport: window.innerWidth })",
    );
    expect(widths.page).toBeLessThanOrEqual(widths.viewport);
    const unlabelled = await page.evaluate<string[]>(`
      [...document.querySelectorAll("input, textarea, button")]
        .filter((control) => !(control.labels?.length || control.getAttribute("aria-label") || control.textContent.trim()))
        .map((control) => control.outerHTML)
    `);
    expect(unlabelled).toEqual([]);
    await page.screenshot({ path: join(ARTIFACTS, "console-375.png"), fullPage: true });
    await closeConsole();
  });

  describe("threads", () => {
    const message = () => page.getByLabel("Message");

    async function sendAndWait(text: string): Promise<void> {
      const before = await page.locator("footer.done").count();
      await message().fill(text);
      await message().press("Control+Enter");
      await waitFor(`the done of "${text}"`, () => page.locator("footer.done").count().then((n) => n === before + 1), 20_000);
    }

    const shownThreadId = async () => (await page.locator("#thread-id").textContent()) ?? "";
    const listed = (threadId: string) => page.locator(`.thread-item[data-thread-id="${threadId}"]`);
    const turnsShown = (n: number) => waitFor(`${n} turns shown`, () => page.locator("footer.done").count().then((count) => count === n));

    /**
     * Each turn as the page shows it: the user's message, and the markup of codex's items less
     * its warnings (error items, which codex does not store with the thread).
     */
    const turnsMarkup = () =>
      page.evaluate<Array<[string, string[]]>>(`
        [...document.querySelectorAll(".turn")].map((turn) => [
          turn.querySelector(".user-message .text").textContent,
          [...turn.querySelectorAll(".events > [data-item-type]")]
            .filter((item) => item.dataset.itemType !== "error")
            .map((item) => item.outerHTML),
        ])
      `);
    const footers = () => page.locator("footer.done").evaluateAll((all) => all.map((footer) => [footer.querySelector(".badge")?.textContent, footer.querySelector(".usage")?.textContent]));

    test("two turns, then a reload: the thread is listed, and its history shows both turns with the markup of the live ones", async () => {
      await openConsole();
      await sendAndWait("run echo from-history");
      await sendAndWait("say **both** turns");
      const threadId = await shownThreadId();
      const live = await turnsMarkup();
      expect(live.map(([text, items]) => [text, items.length])).toEqual([
        ["run echo from-history", 2],
        ["say **both** turns", 1],
      ]);
      const liveFooters = await footers();
      expect(liveFooters).toEqual([
        ["completed", "20 tokens in · 10 out"],
        ["completed", "30 tokens in · 15 out"],
      ]);

      await page.reload();
      await turnsShown(2);
      expect(await turnsMarkup()).toEqual(live);
      expect(await footers()).toEqual(liveFooters);
      expect(await page.locator("#thread-id").textContent()).toBe(threadId);
      expect(await page.locator("#thread-title").textContent()).toBe("run echo from-history");
      const item = listed(threadId);
      expect(await item.locator(".thread-name").textContent()).toBe("run echo from-history");
      expect(await item.locator("time").textContent()).toBe("just now");
      expect(await item.getAttribute("aria-current")).toBe("true");
      // Newest first: no thread above it was started later.
      expect(await page.locator(".thread-item").first().getAttribute("data-thread-id")).toBe(threadId);

      // Opened from the list, the same again; the command's output is there when opened.
      await page.getByRole("button", { name: "New thread" }).click();
      expect(await page.locator(".turn").count()).toBe(0);
      expect(await item.getAttribute("aria-current")).toBeNull();
      await item.click();
      await turnsShown(2);
      expect(await turnsMarkup()).toEqual(live);
      const command = page.locator(".turn details.command");
      await command.locator("summary").click();
      expect(await command.locator("pre.output").textContent()).toBe("from-history\n");
      await page.screenshot({ path: join(ARTIFACTS, "console-threads.png") });
      await page.emulateMedia({ colorScheme: "dark" });
      await page.screenshot({ path: join(ARTIFACTS, "console-threads-dark.png") });

      // And continued: the model sees all three user messages.
      expect(await page.getByLabel("Continue thread").isChecked()).toBe(true);
      await sendAndWait("count");
      expect(await page.locator(".turn").last().locator(".agent-message").textContent()).toBe("3");
      expect(await shownThreadId()).toBe(threadId);
      await closeConsole();
    });

    test("Rename names the thread in its bar and in the list; a refused name is said in the dialog", async () => {
      await openConsole();
      await sendAndWait("say to be renamed");
      const threadId = await shownThreadId();
      await page.getByRole("button", { name: "Rename", exact: true }).click();
      const dialog = page.getByRole("dialog", { name: "Rename thread" });
      await dialog.getByLabel("Name").fill("   ");
      await dialog.getByRole("button", { name: "Save" }).click();
      await waitFor("the refusal", async () => (await dialog.locator(".form-error").textContent()) === "name: must not be empty");
      await dialog.getByLabel("Name").fill("Deploy notes");
      await dialog.getByRole("button", { name: "Save" }).click();
      await waitFor("the new name in the list", async () => (await listed(threadId).locator(".thread-name").textContent()) === "Deploy notes");
      expect(await dialog.isHidden()).toBe(true);
      expect(await page.locator("#thread-title").textContent()).toBe("Deploy notes");
      expect(((await (await fetch(`${server.url}/threads/${threadId}`)).json()) as { name: string }).name).toBe("Deploy notes");
      // The dialog offers the name it has.
      await page.getByRole("button", { name: "Rename", exact: true }).click();
      expect(await dialog.getByLabel("Name").inputValue()).toBe("Deploy notes");
      await page.keyboard.press("Escape");
      expect(await dialog.isHidden()).toBe(true);
      await closeConsole();
    });

    test("Fork from the first turn opens a new thread with only that turn, which continues from there", async () => {
      await openConsole();
      await sendAndWait("say first");
      await sendAndWait("say second");
      const original = await shownThreadId();
      await page.locator(".turn").first().getByRole("button", { name: "Fork from here: say first" }).click();
      const forked = await waitFor("the forked thread", async () => {
        const shown = await shownThreadId();
        return shown !== original ? shown : undefined;
      });
      await turnsShown(1);
      expect((await turnsMarkup()).map(([text]) => text)).toEqual(["say first"]);
      expect(await page.locator(".turn .agent-message").textContent()).toBe("first");
      expect(await page.locator("#thread-title").textContent()).toBe("say first");
      // `count` answers how many user messages the model saw: the first turn's and this one.
      await sendAndWait("count");
      expect(await page.locator(".turn").last().locator(".agent-message").textContent()).toBe("2");
      // codex lists a fork once it has a turn of its own.
      await waitFor("the fork in the list", async () => (await listed(forked).getAttribute("aria-current")) === "true");
      const read = async (threadId: string) =>
        ((await (await fetch(`${server.url}/threads/${threadId}`)).json()) as { turns: Array<{ input: string }> }).turns.map((t) => t.input);
      expect(await read(forked)).toEqual(["say first", "count"]);
      expect(await read(original)).toEqual(["say first", "say second"]);
      await closeConsole();
    });

    test("Archive asks first and is refused while a turn runs on the thread; opened then, the thread follows that turn", async () => {
      await openConsole();
      await sendAndWait("say to be archived");
      const threadId = await shownThreadId();
      // Another client's turn on the thread, read to its end so that it has a watcher.
      const other = await server.send({ type: "user_message", message: "sleep 60000 never said", thread_id: threadId });
      const runId = other.headers.get("x-request-id") as string;
      const reading = other.text();
      const archive = page.getByRole("button", { name: "Archive", exact: true }).first();
      await archive.click();
      const dialog = page.getByRole("dialog", { name: "Archive this thread?" });
      expect(await dialog.locator("#archive-name").textContent()).toBe("say to be archived");
      await dialog.getByRole("button", { name: "Archive" }).click();
      await waitFor("the refusal", async () => (await dialog.locator(".form-error").textContent()) === "A turn is running on this thread. Archive it once that turn has ended.");
      expect(await dialog.isVisible()).toBe(true);
      await dialog.getByRole("button", { name: "Cancel" }).click();
      expect(await dialog.isHidden()).toBe(true);

      // Opened again (here by a reload), the thread shows its running turn live, with Cancel.
      await page.reload();
      await waitFor("the running marker", async () => (await listed(threadId).locator(".badge").textContent()) === "running");
      const running = page.locator(".turn").last();
      await waitFor("the running turn", async () => (await running.locator(".user-message .text").textContent()) === "sleep 60000 never said");
      expect(await page.locator(".turn").count()).toBe(2);
      expect(await archive.isDisabled()).toBe(true);
      expect(await listed(threadId).isDisabled()).toBe(true);
      await page.getByRole("button", { name: "Cancel" }).click();
      expect(await lastDone()).toBe("cancelled");
      await reading;
      expect(((await (await fetch(`${server.url}/runs/${runId}`)).json()) as { status: string }).status).toBe("cancelled");

      await archive.click();
      await dialog.getByRole("button", { name: "Archive" }).click();
      await waitFor("the thread gone from the list", async () => (await listed(threadId).count()) === 0);
      expect(await dialog.isHidden()).toBe(true);
      expect(await page.locator(".turn").count()).toBe(0);
      expect(await page.locator("#thread-bar").isHidden()).toBe(true);
      expect((await fetch(`${server.url}/threads/${threadId}`)).status).toBe(404);
      await closeConsole();
    });

    test("at 375 px the list folds behind the Threads button, which opens and closes it", async () => {
      await openConsole(server.url, { width: 375, height: 740 });
      await sendAndWait("run echo narrow");
      const threadId = await shownThreadId();
      const toggle = page.getByRole("button", { name: "Threads" });
      const list = page.getByRole("navigation", { name: "Threads" });
      expect(await toggle.getAttribute("aria-expanded")).toBe("false");
      expect(await list.isHidden()).toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, "console-threads-375.png") });
      await toggle.click();
      expect(await toggle.getAttribute("aria-expanded")).toBe("true");
      await listed(threadId).waitFor();
      expect(await list.isVisible()).toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, "console-threads-375-open.png") });
      // Escape folds it and gives focus back to the button.
      await listed(threadId).focus();
      await page.keyboard.press("Escape");
      expect(await list.isHidden()).toBe(true);
      expect(await toggle.evaluate((button) => button === button.ownerDocument.activeElement)).toBe(true);
      // Picking a thread folds it too, and focus goes to the thread.
      await page.getByRole("button", { name: "New thread" }).click();
      await toggle.click();
      await listed(threadId).click();
      await turnsShown(1);
      expect(await list.isHidden()).toBe(true);
      expect(await toggle.getAttribute("aria-expanded")).toBe("false");
      expect(await page.evaluate<string>("document.activeElement.id")).toBe("thread-title");
      const widths = await page.evaluate<{ page: number; viewport: number }>("({ page: document.documentElement.scrollWidth, viewport: window.innerWidth })");
      expect(widths.page).toBeLessThanOrEqual(widths.viewport);
      await closeConsole();
    });
  });

  describe("approvals (app-server engine, on-request)", () => {
    let asking: TestServer;
    /** Outside what codex's sandbox lets a command write: only an approved command can. */
    let outside: string;
    beforeAll(() => {
      asking = startTestServer({ engine: "app-server", bypassApprovalsAndSandbox: false, approvalPolicy: "on-request" });
      outside = mkdtempSync("/var/tmp/console-approvals-");
    });
    afterAll(async () => {
      await asking.close();
      rmSync(outside, { recursive: true, force: true });
    });

    async function askToWrite(file: string) {
      await openConsole(asking.url);
      await page.getByLabel("Message").fill(`escalate touch ${file} && echo wrote`);
      await page.getByLabel("Work directory").fill("/tmp");
      await page.getByRole("button", { name: "Send" }).click();
      const card = page.getByRole("group", { name: "Approval request" });
      await card.waitFor({ timeout: 20_000 });
      expect(await card.locator(".badge").textContent()).toBe("waiting for you");
      expect(await card.locator("p").nth(1).textContent()).toBe(`Run /bin/bash -lc 'touch ${file} && echo wrote' in /tmp?`);
      expect(await card.locator(".reason").textContent()).toBe("the test asks to run it outside the sandbox");
      return card;
    }

    test("an answer streamed word by word grows in place, one message", async () => {
      await openConsole(asking.url);
      await page.getByLabel("Message").fill("stream one two three four");
      await page.getByLabel("Message").press("Control+Enter");
      expect(await lastDone()).toBe("completed");
      expect(await page.locator(".turn .agent-message").allTextContents()).toEqual(["one two three four"]);
      await closeConsole();
    });

    test("Approve: the command runs outside the sandbox, and the card says approved", async () => {
      const file = join(outside, "approved.txt");
      const card = await askToWrite(file);
      await card.getByRole("button", { name: "Approve" }).click();
      expect(await lastDone()).toBe("completed");
      expect(await card.locator(".badge").textContent()).toBe("approved");
      expect(await card.getByRole("button").count()).toBe(0);
      expect(await page.locator(".turn details.command .badge").textContent()).toBe("exit 0");
      expect(await page.locator(".turn .agent-message").textContent()).toBe("ran: wrote");
      expect(existsSync(file)).toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, "console-approval.png") });
      await closeConsole();
    });

    test("Deny: the command never runs; the card says denied and the command failed", async () => {
      const file = join(outside, "denied.txt");
      const card = await askToWrite(file);
      await page.screenshot({ path: join(ARTIFACTS, "console-approval-waiting.png") });
      await card.getByRole("button", { name: "Deny" }).click();
      expect(await lastDone()).toBe("completed");
      expect(await card.locator(".badge").textContent()).toBe("denied");
      expect(await page.locator(".turn details.command .badge").textContent()).toBe("failed");
      expect(await page.locator(".turn .agent-message").textContent()).toContain("rejected by user");
      expect(existsSync(file)).toBe(false);
      await closeConsole();
    });
  });

  describe("with --auth-token", () => {
    let secured: TestServer;
    beforeAll(() => {
      secured = startTestServer({ authToken: "console-token" });
    });
    afterAll(async () => {
      await secured.close();
    });

    test("the page asks for the token once, keeps it in sessionStorage, never in the URL", async () => {
      await openConsole(secured.url);
      // The thread list needs it at once.
      const dialog = page.getByRole("dialog", { name: "Access token" });
      await dialog.waitFor();
      await dialog.getByLabel("Token").fill("wrong-token");
      await dialog.getByRole("button", { name: "Use token" }).click();
      // A wrong token: asked again, saying why.
      await waitFor("the second prompt", async () => (await page.locator("#token-reason").textContent())?.includes("did not accept"));
      expect(await dialog.isVisible()).toBe(true);
      await dialog.getByLabel("Token").fill("console-token");
      await dialog.getByRole("button", { name: "Use token" }).click();
      await waitFor("the thread list", async () => (await page.locator("#threads-note").textContent()) === "No threads yet.");
      expect(await dialog.isHidden()).toBe(true);
      await page.getByLabel("Message").fill("say behind a token");
      await page.getByRole("button", { name: "Send" }).click();
      expect(await lastDone()).toBe("completed");
      expect(await page.locator(".turn .agent-message").textContent()).toBe("behind a token");
      expect(page.url()).toBe(`${secured.url}/`);
      expect(await page.evaluate(() => sessionStorage.getItem("codex-http-server:token"))).toBe("console-token");
      // The next turn, the list and the history use the kept token without asking.
      await page.getByLabel("Message").fill("say again");
      await page.getByLabel("Message").press("Control+Enter");
      await waitFor("the second turn's done", () => page.locator("footer.done").count().then((n) => n === 2));
      await page.locator(".thread-item").first().waitFor();
      await page.reload();
      await waitFor("the history", () => page.locator("footer.done").count().then((n) => n === 2));
      expect(await dialog.isHidden()).toBe(true);
      await closeConsole();
    });

    test("cancelling the prompt leaves the list unread and the turn unsent, shown as unauthorized", async () => {
      await openConsole(secured.url);
      const dialog = page.getByRole("dialog", { name: "Access token" });
      await dialog.waitFor();
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await waitFor("the list's note", async () => (await page.locator("#threads-note").textContent()) === "No access token was given.");
      await page.getByLabel("Message").fill("say never sent");
      await page.getByRole("button", { name: "Send" }).click();
      await dialog.waitFor();
      await dialog.getByRole("button", { name: "Cancel" }).click();
      const error = page.locator(".turn .item.error");
      await error.waitFor();
      expect(await error.textContent()).toBe("unauthorized No access token was given.");
      expect(secured.model.requests.map((r) => r.prompts.at(-1))).not.toContain("say never sent");
      await closeConsole();
    });
  });

  describe("with --tokens-file", () => {
    let shared: TestServer;
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "console-tenants-"));
      const path = join(dir, "tokens.json");
      writeTokensFile(path);
      shared = startTestServer({ tokensFile: { path, tenants: readTokensFile(path).tenants }, stateDir: join(dir, "state") });
    });
    afterAll(async () => {
      await shared.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test("a tenant's console lists only its own threads; an admin's, every one", async () => {
      const threadOf = async (tenant: TenantName, message: string) => {
        const res = await shared.send({ type: "user_message", message }, { headers: { "content-type": "application/json", ...as(tenant) } });
        return /"thread_id":"([0-9a-f-]{36})"/.exec(await res.text())?.[1] as string;
      };
      const alices = await threadOf("alice", "say alice's own");
      const bobs = await threadOf("bob", "say bob's own");
      const listedWith = async (token: string) => {
        await openConsole(shared.url);
        const dialog = page.getByRole("dialog", { name: "Access token" });
        await dialog.getByLabel("Token").fill(token);
        await dialog.getByRole("button", { name: "Use token" }).click();
        await page.locator(".thread-item").first().waitFor();
        const ids = await page.locator(".thread-item").evaluateAll((items) => items.map((item) => item.getAttribute("data-thread-id")));
        await closeConsole();
        return ids;
      };
      expect(await listedWith(TOKENS.bob)).toEqual([bobs]);
      expect(await listedWith(TOKENS.alice)).toEqual([alices]);
      expect(await listedWith(TOKENS.root)).toEqual([bobs, alices]);
    });
  });

  describe("bound to 0.0.0.0 (DNS rebinding)", () => {
    let open: TestServer;
    let port: number;
    beforeAll(() => {
      open = startTestServer({ host: "0.0.0.0", allowedHosts: ["codex.test"] });
      port = open.running.server.port as number;
    });
    afterAll(async () => {
      await open.close();
    });

    for (const name of ["127.0.0.1", "localhost", "codex.test"]) {
      test(`opened as ${name}, the console runs a turn`, async () => {
        await openConsole(`http://${name}:${port}`);
        await page.getByLabel("Message").fill(`say opened as ${name}`);
        await page.getByRole("button", { name: "Send" }).click();
        expect(await lastDone()).toBe("completed");
        expect(await page.locator(".turn .agent-message").textContent()).toBe(`opened as ${name}`);
        await closeConsole();
      });
    }

    test("under a name --allowed-hosts does not list (a rebinding), the page and its POSTs are refused", async () => {
      page = await browser.newPage();
      errors = pageErrors(page);
      // A plain-http page's navigation carries no Origin and no Sec-Fetch-*: its User-Agent tells.
      const navigation = await page.goto(`http://rebound.test:${port}/`);
      expect(navigation?.status()).toBe(403);
      // What a rebinding page's own script would try.
      const answer = await page.evaluate(async () => {
        const body = JSON.stringify({ type: "user_message", message: "say rebound" });
        const res = await fetch("/messages", { method: "POST", headers: { "content-type": "application/json" }, body });
        return { status: res.status, body: await res.json() };
      });
      expect(answer).toEqual({
        status: 403,
        body: {
          error: {
            code: "forbidden_host",
            message: "A browser may reach this server only by IP address, localhost or a name that --allowed-hosts lists, not as rebound.test.",
          },
        },
      });
      expect(open.model.requests.map((r) => r.prompts.at(-1))).not.toContain("say rebound");
      await closeConsole();
    });
  });

  /** Every item type of the SDK, most of which the scripted model cannot make codex 0.163 produce. */
  async function* everyItemType(): AsyncGenerator<EngineEvent> {
    yield { type: "thread.started", thread_id: "thread-all" };
    yield { type: "turn.started" };
    yield { type: "item.completed", item: { id: "r", type: "reasoning", text: "Looking at **the tests**" } };
    const todo = (done: boolean[]) => ({
      id: "t",
      type: "todo_list" as const,
      items: ["read the code", "fix the bug", "run the tests"].map((text, n) => ({ text, completed: done[n] ?? false })),
    });
    yield { type: "item.started", item: todo([true]) };
    yield { type: "item.started", item: { id: "c", type: "command_execution", command: "make test", aggregated_output: "", status: "in_progress" } };
    yield {
      type: "item.completed",
      item: { id: "c", type: "command_execution", command: "make test", aggregated_output: "1 failed\n", exit_code: 2, status: "failed" },
    };
    yield {
      type: "item.completed",
      item: {
        id: "f",
        type: "file_change",
        status: "completed",
        changes: [
          { path: "src/new.ts", kind: "add" },
          { path: "README.md", kind: "update" },
          { path: "old.txt", kind: "delete" },
        ],
      },
    };
    yield { type: "item.updated", item: todo([true, true]) };
    yield {
      type: "item.completed",
      item: { id: "m", type: "mcp_tool_call", server: "docs", tool: "search", arguments: {}, status: "completed", result: { content: [], structured_content: { hits: 3 } } },
    };
    yield { type: "item.completed", item: { id: "w", type: "web_search", query: "bun test timeout" } };
    yield { type: "item.completed", item: { id: "e", type: "error", message: "retrying the model" } };
    // A file change that waited for approval until nobody answered.
    yield { type: "approval.requested", approval_id: "ap-1", kind: "file_change", reason: "outside the workspace", changes: [{ path: "/etc/motd", kind: "update" }] };
    yield { type: "approval.resolved", approval_id: "ap-1", decision: "deny", by: "timeout" };
    // An event this page does not know, as a newer server might send.
    yield { type: "context.compacted" } as unknown as ThreadEvent;
    yield { type: "item.completed", item: { id: "a", type: "agent_message", text: "Fixed. <script>window.pwned = 1</script>" } };
    yield { type: "turn.completed", usage: USAGE };
  }

  test("renders every SDK item type; updates replace an item in place; HTML from the agent stays text", async () => {
    const { app } = setup(fakeEngine(everyItemType), { host: "127.0.0.1" });
    const fake = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
    try {
      await openConsole(`http://127.0.0.1:${fake.port}`);
      await page.getByLabel("Message").fill("everything");
      await page.getByLabel("Message").press("Control+Enter");
      expect(await lastDone()).toBe("completed");
      const turn = page.locator(".turn");
      expect(await turn.locator(".events > *").evaluateAll((items) => items.map((item) => item.className))).toEqual([
        "item reasoning",
        "item todo-list",
        "item command",
        "item file-change",
        "item tool-call",
        "item web-search",
        "item warning",
        "item approval resolved",
        "item note",
        "item agent-message",
        "done completed",
      ]);
      const reasoning = turn.locator("details.reasoning");
      expect(await reasoning.getAttribute("open")).toBeNull();
      expect(await reasoning.locator("strong").textContent()).toBe("the tests");
      expect(await turn.locator(".todo li").allTextContents()).toEqual(["read the code", "fix the bug", "run the tests"]);
      expect(await turn.locator(".todo input").evaluateAll((boxes) => boxes.map((box) => (box as unknown as { checked: boolean }).checked))).toEqual([
        true,
        true,
        false,
      ]);
      expect(await turn.locator(".command summary").textContent()).toBe("Commandmake testexit 2");
      expect(await turn.locator(".command .badge").getAttribute("class")).toBe("badge bad");
      expect(await turn.locator(".file-change .changes li").allTextContents()).toEqual(["add src/new.ts", "update README.md", "delete old.txt"]);
      expect(await turn.locator(".tool-call summary").textContent()).toBe("Tooldocs.searchcompleted");
      expect(await turn.locator(".tool-call pre").textContent()).toBe('{\n  "hits": 3\n}');
      expect(await turn.locator(".web-search").textContent()).toBe("Web search bun test timeout");
      expect(await turn.locator(".item.warning").textContent()).toBe("Warning retrying the model");
      const approval = turn.locator(".item.approval");
      expect(await approval.locator(".badge").textContent()).toBe("denied (nobody answered in time)");
      expect(await approval.locator("p").nth(1).textContent()).toBe("Apply these changes?");
      expect(await approval.locator(".changes li").allTextContents()).toEqual(["update /etc/motd"]);
      expect(await approval.locator(".reason").textContent()).toBe("outside the workspace");
      expect(await approval.getByRole("button").count()).toBe(0);
      expect(await turn.locator(".item.note").textContent()).toBe("context.compacted");
      expect(await turn.locator(".agent-message").textContent()).toBe("Fixed. <script>window.pwned = 1</script>");
      expect(await page.evaluate("window.pwned")).toBeUndefined();
      expect(await turn.locator("footer .usage").textContent()).toBe("10 tokens in (2 cached) · 5 out, 1 reasoning");
      await page.screenshot({ path: join(ARTIFACTS, "console-all-items.png"), fullPage: true });
      await page.emulateMedia({ colorScheme: "dark" });
      await page.screenshot({ path: join(ARTIFACTS, "console-all-items-dark.png"), fullPage: true });
      await closeConsole();
    } finally {
      await fake.stop(true);
    }
  });

  test("a long list pages with Load more and a search; a long thread pages back with Load earlier turns; names stay text", async () => {
    const nowSeconds = Math.floor(Date.now() / 1000);
    const id = (n: number) => `01a213ec-28be-7ba3-89bc-${String(n).padStart(12, "0")}`;
    const turns = Array.from({ length: 25 }, (_, n) => ({
      id: id(1000 + n),
      input: `turn ${n}`,
      items: [{ id: "item_0", type: "agent_message" as const, text: `answer ${n}` }],
      status: "completed" as const,
      usage: null,
      startedAt: null,
    }));
    // Newest first, as codex lists them: 5 minutes old, then 3 hours, then older and older.
    const threads: FakeStoredThread[] = Array.from({ length: 25 }, (_, n) => ({
      id: id(n),
      name: n === 1 ? '<img src=x onerror="window.pwned = 1">' : null,
      preview: n === 0 ? "the long thread" : `thread ${n}`,
      cwd: "/srv/project",
      createdAt: nowSeconds - 86_400 * 30,
      updatedAt: nowSeconds - (n === 0 ? 300 : 3 * 3600 * n),
      turns: n === 0 ? turns : [],
    }));
    const store = fakeThreadStore(threads, {
      // One page boundary, as codex's cursor would make it: "page-2" goes on after the first 20.
      async list({ limit, cursor, search }) {
        const found = threads.filter((thread) => !search || (thread.name ?? thread.preview).includes(search));
        const from = cursor === "page-2" ? 20 : 0;
        const page = found.slice(from, from + limit);
        return { threads: page.map(({ turns: _, ...thread }) => thread), nextCursor: from + limit < found.length ? "page-2" : null };
      },
      async read(threadId, { cursor }) {
        const { turns: all, ...thread } = threads.find((t) => t.id === threadId) as FakeStoredThread;
        const older = cursor === "page-2";
        return { ...thread, turns: older ? all.slice(0, 5) : all.slice(5), nextCursor: older || all.length <= 20 ? null : "page-2", historyMissing: false };
      },
    });
    const { app } = setup(fakeEngine(everyItemType, store), { host: "127.0.0.1" });
    const fake = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
    try {
      await openConsole(`http://127.0.0.1:${fake.port}`);
      const items = page.locator(".thread-item");
      await waitFor("the first page", () => items.count().then((n) => n === 20));
      expect(await items.first().locator(".thread-name").textContent()).toBe("the long thread");
      expect(await items.locator("time").evaluateAll((times) => times.slice(0, 3).map((time) => time.textContent))).toEqual(["5 min ago", "3 h ago", "6 h ago"]);
      expect(await items.nth(1).locator(".thread-name").textContent()).toBe('<img src=x onerror="window.pwned = 1">');
      expect(await page.evaluate("window.pwned")).toBeUndefined();
      const more = page.getByRole("button", { name: "Load more" });
      await more.click();
      await waitFor("the second page", () => items.count().then((n) => n === 25));
      expect(await items.last().locator(".thread-name").textContent()).toBe("thread 24");
      expect(await more.isHidden()).toBe(true);

      await page.getByLabel("Search threads").fill("thread 2");
      await waitFor("the search", async () => (await items.allTextContents()).every((text) => text.startsWith("thread 2")) && (await items.count()) === 6);
      await page.getByLabel("Search threads").fill("nothing like it");
      await waitFor("no match", async () => (await page.locator("#threads-note").textContent()) === "No thread matches.");
      expect(await items.count()).toBe(0);
      await page.getByLabel("Search threads").fill("");
      await waitFor("the list again", () => items.count().then((n) => n === 20));

      await items.first().click();
      await waitFor("the newest 20 turns", () => page.locator(".turn").count().then((n) => n === 20));
      expect(await page.locator(".turn .user-message .text").first().textContent()).toBe("turn 5");
      expect(await page.locator(".turn .agent-message").last().textContent()).toBe("answer 24");
      await page.getByRole("button", { name: "Load earlier turns" }).click();
      await waitFor("every turn", () => page.locator(".turn").count().then((n) => n === 25));
      expect(await page.locator(".turn .user-message .text").allTextContents()).toEqual(turns.map((turn) => turn.input));
      expect(await page.getByRole("button", { name: "Load earlier turns" }).isHidden()).toBe(true);
      expect(store.calls.filter(([method]) => method === "read").map(([, , query]) => query)).toEqual([
        { turnsLimit: 20, cursor: undefined },
        { turnsLimit: 20, cursor: "page-2" },
      ]);
      await closeConsole();
    } finally {
      await fake.stop(true);
    }
  });

  test("a turn sent while the thread list still loads is shown once: the page restores nothing over it", async () => {
    const threadId = "01a213ec-28be-7ba3-89bc-00000000aaaa";
    const turn = heldTurn(threadId);
    let releaseList!: () => void;
    const listHeld = new Promise<void>((resolve) => (releaseList = resolve));
    const store = fakeThreadStore([], {
      async list() {
        await listHeld;
        return { threads: [], nextCursor: null };
      },
    });
    const { app } = setup(fakeEngine(turn.turn, store), { host: "127.0.0.1" });
    const fake = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
    try {
      await openConsole(`http://127.0.0.1:${fake.port}`);
      await page.getByLabel("Message").fill("sent early");
      await page.getByLabel("Message").press("Control+Enter");
      // The turn has started its thread and saved itself for a reload, as a restore would find them.
      await waitFor("the thread", async () => (await page.locator("#thread-id").textContent()) === threadId);
      await activeRunId();
      releaseList();
      await waitFor("the list", async () => (await page.locator("#threads-note").textContent()) === "No threads yet.");
      turn.release();
      expect(await lastDone()).toBe("completed");
      // After the turn, the page reads its thread once to give it a fork control; nothing else read it.
      await waitFor("the turn's lookup", () => store.calls.some(([method]) => method === "read"));
      expect(store.calls.filter(([method]) => method === "read").map(([, , query]) => query)).toEqual([{ turnsLimit: 3, cursor: undefined }]);
      expect(await page.locator(".turn").count()).toBe(1);
      await closeConsole();
    } finally {
      await fake.stop(true);
    }
  });

  test("screenshot of a finished thread, for the README", async () => {
    // A model codex knows, so that its notice about the scripted model's unknown metadata stays out of the picture.
    const known = startTestServer({ codexConfigOverrides: ['model="gpt-5.5"'] });
    try {
      await screenshotThread(known.url);
    } finally {
      await known.close();
    }
  });

  async function screenshotThread(url: string): Promise<void> {
    // An earlier thread, named, for the list to show beside this one.
    const earlier = await fetch(`${url}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "user_message", message: "say The nightly build is green." }),
    });
    const threadId = /"thread_id":"([0-9a-f-]{36})"/.exec(await earlier.text())?.[1];
    const renamed = await fetch(`${url}/threads/${threadId}`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Nightly build check" }),
    });
    expect(renamed.status).toBe(200);
    await openConsole(url, { width: 900, height: 1000 });
    const message = page.getByLabel("Message");
    await message.fill("run ls -1 /etc/apt");
    await message.press("Control+Enter");
    await lastDone();
    await page.locator(".turn details.command summary").click();
    await message.fill("say Listed **/etc/apt**:\n\n- `sources.list.d` holds the package sources\n- `trusted.gpg.d` holds the keys");
    await message.press("Control+Enter");
    await waitFor("the second turn's done", () => page.locator("footer.done").count().then((n) => n === 2));
    expect(await page.locator(".turn .item.warning").count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, "console.png") });
    await closeConsole();
  }
});
