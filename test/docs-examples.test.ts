/**
 * Every marked example of README.md and docs/*.md, run against a real server (`bun src/cli.ts`)
 * and the scripted model: each command's output must be the documented one (see
 * test/fixtures/doc-examples.ts). A command whose timing matters (a turn that runs while another
 * request comes) is started by its test in that order; the rest run one after the other.
 *
 * `UPDATE_DOC_EXAMPLES=1 bun test test/docs-examples.test.ts` writes the real outputs into the
 * documents instead.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startCli } from "./fixtures/cli-process";
import { createCodexHome } from "./fixtures/codex-home";
import { DOC_ADDRESS, docFiles, ExampleRun, example, readExamples, REPO, UPDATING } from "./fixtures/doc-examples";
import { sseReader } from "./fixtures/sse";
import { postMessage, useScriptedCodex } from "./fixtures/turns";

const scripted = useScriptedCodex();
const TIMEOUT = 90_000;
const DEMO = "/tmp/demo-project";
let demo: string;

let curlHome: string;

beforeAll(() => {
  demo = join(scripted.scratch, "demo-project");
  mkdirSync(demo);
  writeFileSync(join(demo, "README.md"), "# demo\n");
  // Into a pipe curl would print a progress meter, which it does not print on a terminal.
  curlHome = join(scripted.scratch, "curl-home");
  mkdirSync(curlHome);
  writeFileSync(join(curlHome, ".curlrc"), "no-progress-meter\n");
});

type Served = { url: string; address: string; env: Record<string, string>; stdout: () => string; stop(): Promise<void> };

/**
 * A server with a CODEX_HOME of its own, so that the thread list holds only this example's
 * threads; `env` on top of the scripted model's (undefined removes a variable).
 */
async function serve(args: string[] = [], env: Record<string, string | undefined> = {}): Promise<Served> {
  const home = createCodexHome(scripted.model.url);
  const served = Object.fromEntries(
    Object.entries({ ...home.env, ...env }).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  const server = await startCli(["--addr", "127.0.0.1:0", ...args], { ...served, ...env });
  return {
    url: server.url,
    address: new URL(server.url).host,
    env: { ...served, CURL_HOME: curlHome },
    stdout: server.stdout,
    async stop() {
      await server.stop();
      home.remove();
    },
  };
}

function runOf(name: string, served: Served, options: { cwd?: string; paths?: Record<string, string>; sharing?: ExampleRun } = {}): ExampleRun {
  const { cwd, paths = {}, sharing } = options;
  return new ExampleRun(example(name), { address: served.address, env: served.env, paths: { [DEMO]: demo, ...paths }, ...(cwd && { cwd }) }, sharing);
}

/**
 * A test with a server of its own, started with `args` (a function for values known only once
 * the tests run) and `env`, and stopped whatever happens.
 */
function withServer(
  title: string,
  args: string[] | (() => string[]),
  env: Record<string, string | undefined>,
  body: (served: Served) => Promise<void>,
) {
  test(title, async () => {
    const served = await serve(typeof args === "function" ? args() : args, env);
    try {
      await body(served);
    } finally {
      await served.stop();
    }
  }, TIMEOUT);
}

/** An example whose commands run one after the other against a server started with `args`. */
function sequential(name: string, args: string[] = [], env: Record<string, string> = {}) {
  withServer(name, args, env, async (served) => {
    const run = runOf(name, served);
    await run.runAll();
    run.save();
  });
}

/** An example whose commands run while a turn started by the test (`sleep 5000 slow`, with `fields`) runs. */
function whileATurnRuns(name: string, args: string[] | (() => string[]), fields: Record<string, unknown> = {}) {
  withServer(name, args, {}, async (served) => {
    const run = runOf(name, served);
    const running = await startTurn(served, { message: "sleep 5000 slow", ...fields });
    await run.runAll();
    run.save();
    await running.reader.cancel();
  });
}

/** A turn's whole stream, as curl -N prints it. */
async function turnText(served: Served, body: Record<string, unknown>): Promise<string> {
  return await (await postMessage(served.url, { type: "user_message", ...body })).text();
}

/** The banner's box drawn again around its lines, as wide as they need (the real address may be longer). */
function rebox(banner: string): string {
  const lines = banner
    .split("\n")
    .filter((line) => line.startsWith("│"))
    .map((line) => line.slice(3, -3).trimEnd());
  const width = Math.max(...lines.map((line) => line.length));
  const rule = "─".repeat(width + 4);
  return [`╭${rule}╮`, ...lines.map((line) => `│  ${line.padEnd(width)}  │`), `╰${rule}╯`].join("\n");
}

/** Starts a turn from the test and returns once codex has started it, its stream still open. */
async function startTurn(served: Served, body: Record<string, unknown>) {
  const reader = sseReader(await postMessage(served.url, { type: "user_message", ...body }));
  const read = await reader.until((frame) => frame.event === "turn.started");
  const threadId = JSON.parse(read.frames[0]?.data ?? "{}").thread_id as string;
  return { reader, threadId };
}

describe("README.md", () => {
  sequential("readme-first-turn", [], { CODEX_SERVER_AUTH_TOKEN: "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f" });

  /** The README's own tokens file, alice's workspace root in the scratch directory. */
  const tokensFile = () => {
    const json = /## Several users[\s\S]*?```json\n([\s\S]*?)\n```/.exec(readFileSync(join(REPO, "README.md"), "utf8"))?.[1] as string;
    const aliceRoot = join(scripted.scratch, "srv-alice");
    mkdirSync(aliceRoot, { recursive: true });
    const path = join(scripted.scratch, "tokens.json");
    writeFileSync(path, json.replace('"/srv/alice"', JSON.stringify(aliceRoot)));
    return ["--tokens-file", path];
  };
  withServer("readme-tenants", tokensFile, {}, async (served) => {
    const run = runOf("readme-tenants", served);
    await run.runAll();
    run.save();
  });
});

describe("docs/api.md", () => {
  sequential("api-health");
  sequential("api-ready");
  sequential("api-say-hi");
  sequential("api-work-dir");
  sequential("api-fail");
  sequential("api-reattach", ["--reattach-grace", "30"]);
  sequential("api-threads");
  sequential("api-errors");

  withServer("api-enqueue, api-enqueue-status", [], {}, async (served) => {
    const queued = runOf("api-enqueue", served);
    const status = runOf("api-enqueue-status", served);
    // A thread exists once its first turn has ended; job-11 then runs on it.
    const first = await startTurn(served, { message: "say hi" });
    await first.reader.rest();
    const running = await startTurn(served, { message: "sleep 5000 slow", thread_id: first.threadId, id: "job-11" });
    const documentedThread = /"thread_id":"([0-9a-f-]{36})"/.exec(queued.step(0).command)?.[1] as string;
    queued.bind(documentedThread, first.threadId);
    const waiting = queued.start(0);
    await waiting.reach("id: 1");
    await status.run(0);
    await running.reader.rest();
    await waiting.finish();
    queued.save();
    status.save();
  });

  withServer("api-cancel-stream, api-cancel", [], {}, async (served) => {
    const stream = runOf("api-cancel-stream", served);
    const cancel = runOf("api-cancel", served);
    const turn = stream.start(0);
    await turn.reach("id: 3");
    await cancel.run(0);
    await turn.finish();
    stream.save();
    cancel.save();
  });

  whileATurnRuns("api-id-in-use", [], { id: "job-42" });
  whileATurnRuns("api-error-limits", () => ["--workspace-root", demo, "--max-concurrent-turns", "1"]);

  withServer("client, client-run", [], {}, async (served) => {
    const dir = join(REPO, "test-artifacts", `client-example-${process.pid}`);
    try {
      // Inside the checkout, where `codex-http-server/client` resolves to src/client.ts.
      mkdirSync(dir, { recursive: true });
      const source = example("client").body.replaceAll(DOC_ADDRESS, served.address).replaceAll(DEMO, demo);
      writeFileSync(join(dir, "client-example.ts"), source);
      const run = runOf("client-run", served, { cwd: dir });
      await run.runAll();
      run.save();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("docs/configuration.md", () => {
  sequential("config-exit-codes");

  withServer("config-banner", [], {}, async (served) => {
    const run = runOf("config-banner", served);
    run.compareWhole(rebox(run.documentedOutput(served.stdout())));
  });

  withServer("config-rejected-key", [], {}, async (served) => {
    runOf("config-rejected-key", served).compareTail(await turnText(served, { message: "unauthorized" }));
  });

  withServer("config-missing-key", [], { MOCK_API_KEY: undefined }, async (served) => {
    runOf("config-missing-key", served).compareTail(await turnText(served, { message: "say hi" }));
  });
});

describe("docs/engines.md", () => {
  const approvals = ["--engine", "app-server", "--dangerously-bypass-approvals-and-sandbox", "false", "--approval-policy", "on-request"];
  withServer("engines-approval, engines-approval-confirm, engines-approval-not-found, engines-approval-denied", approvals, {}, async (served) => {
    // Files outside codex's sandbox, which only an approved command may write.
    const approved = join(scripted.scratch, "approved-by-curl.txt");
    const denied = join(scripted.scratch, "denied-by-curl.txt");
    const paths = { "/var/tmp/approved-by-curl.txt": approved, "/var/tmp/denied-by-curl.txt": denied };
    const stream = runOf("engines-approval", served, { paths });
    const confirm = runOf("engines-approval-confirm", served, { paths, sharing: stream });
    const turn = stream.start(0);
    await turn.reach("id: 5");
    await confirm.run(0);
    await turn.finish();
    expect(existsSync(approved)).toBe(true);

    const waiting = sseReader(await postMessage(served.url, { type: "user_message", message: `escalate touch ${denied} && echo wrote`, id: "job-a2", work_dir: "/tmp" }));
    const asked = await waiting.until((frame) => frame.event === "approval.requested");
    const approvalId = JSON.parse(asked.frames.at(-1)?.data ?? "{}").approval_id as string;
    const notFound = runOf("engines-approval-not-found", served, { paths });
    await notFound.run(0);
    const answer = await postMessage(served.url, { type: "user_confirm", id: "job-a2", approval_id: approvalId, decision: "deny" });
    expect(answer.status).toBe(200);
    runOf("engines-approval-denied", served, { paths }).compareTail((await waiting.rest()).raw);
    expect(existsSync(denied)).toBe(false);
    for (const run of [stream, confirm, notFound]) run.save();
  });
});

describe("docs/security.md", () => {
  sequential("security-token", [], { CODEX_SERVER_AUTH_TOKEN: "s3cret-token-4f9c2a" });
});

test("every console block that runs curl is a checked example, and every example has its test", () => {
  const tested = new Set(
    [...readFileSync(import.meta.path, "utf8").matchAll(/(?:sequential|whileATurnRuns|runOf|example)\("([a-z0-9-]+)"/g)].map((match) => match[1]),
  );
  const examples = readExamples();
  expect(examples.map((e) => e.name).filter((name) => !tested.has(name))).toEqual([]);
  const unmarked: string[] = [];
  for (const file of docFiles()) {
    const lines = readFileSync(join(REPO, file), "utf8").split("\n");
    lines.forEach((line, at) => {
      if (!/^\s*```console$/.test(line) || /^\s*<!-- example: /.test(lines[at - 1] ?? "")) return;
      const end = lines.findIndex((l, i) => i > at && /^\s*```$/.test(l));
      const curl = lines.slice(at + 1, end).find((l) => /^\s*\$ .*\bcurl /.test(l));
      if (curl !== undefined) unmarked.push(`${file}:${at + 1}: ${curl.trim()}`);
    });
  }
  expect(unmarked).toEqual([]);
});

afterAll(() => {
  if (UPDATING) console.log("UPDATE_DOC_EXAMPLES=1: the documents now hold the real outputs; review them with git diff");
});
