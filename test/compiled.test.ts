/** The single-file executable, built as `bun run build` builds it, started from another directory. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { locateCodex } from "../src/engine/codex-binary";
import { type CodexHome, createCodexHome } from "./fixtures/codex-home";
import { type MockModel, startMockModel } from "./fixtures/mock-model";
import { readSse } from "./fixtures/sse";
import { agentTexts, doneOf, postMessage } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

const root = new URL("..", import.meta.url).pathname;
let dir: string;
let model: MockModel;
let home: CodexHome;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "compiled-"));
  const build = Bun.spawnSync(["bun", "run", "build", "--outfile", join(dir, "sse-http-server")], { cwd: root, stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  model = startMockModel();
  home = createCodexHome(model.url);
}, 120_000);

afterAll(async () => {
  await model.stop();
  home.remove();
  rmSync(dir, { recursive: true, force: true });
});

const env = () => ({ PATH: "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...home.env });

test("without a codex it can find, it stops at start-up with one line", async () => {
  const child = Bun.spawn([join(dir, "sse-http-server"), "-a", "127.0.0.1:0"], { cwd: "/", env: env(), stdout: "pipe", stderr: "pipe" });
  expect(await child.exited).toBe(1);
  expect(await new Response(child.stderr).text()).toBe(
    "error: codex binary not found: run `bun install` in the checkout, put `codex` on PATH or beside the executable, or pass --codex-path / CODEX_PATH\n",
  );
});

/**
 * Starts the executable from /, runs one turn of `message` and expects `answer`, then stops it
 * with SIGTERM, which must exit 0.
 */
async function expectTurnFromRoot(extraEnv: Record<string, string>, message: string, answer: string) {
  const child = Bun.spawn([join(dir, "sse-http-server"), "-a", "127.0.0.1:0"], { cwd: "/", env: { ...env(), ...extraEnv }, stdout: "pipe", stderr: "pipe" });
  try {
    let banner = "";
    void (async () => {
      for await (const chunk of child.stdout) banner += new TextDecoder().decode(chunk);
    })();
    const url = await waitFor("the banner", () => /Server listening on: (http:\/\/\S+)/.exec(banner)?.[1], 15_000);
    const { frames } = await readSse(await postMessage(url, { type: "user_message", message }));
    expect(agentTexts(frames)).toEqual([answer]);
    // The web console is inside the executable, transpiled at build time.
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="/console/console.js"></script>');
    const script = await (await fetch(`${url}/console/console.js`)).text();
    expect(script).toContain('from "./markdown.js"');
    expect(doneOf(frames).status).toBe("completed");
    child.kill("SIGTERM");
    expect(await child.exited).toBe(0);
  } finally {
    child.kill("SIGKILL");
  }
}

const bundledCodex = () => locateCodex({ explicitPath: undefined, pathEnv: "", executableDir: root }).path;

test("with CODEX_PATH, started from /, it serves a real offline turn", () =>
  expectTurnFromRoot({ CODEX_PATH: bundledCodex() }, "say compiled", "compiled"), 60_000);

test("with codex beside it, started from /, it serves a full turn", () => {
  symlinkSync(bundledCodex(), join(dir, "codex"));
  return expectTurnFromRoot({}, "run pwd", "ran: /");
}, 60_000);
