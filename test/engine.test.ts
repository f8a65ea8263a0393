import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { locateCodex, probeCodex } from "../src/engine/codex-binary";
import { createSdkEngine, withFirstEventDeadline } from "../src/engine/sdk-engine";
import { EngineError } from "../src/engine/types";
import { createLogger } from "../src/log";
import { isAlive } from "./fixtures/processes";

const dir = mkdtempSync(join(tmpdir(), "engine-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string, mode = 0o755): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, mode);
  return path;
}

async function* numbers(delayMs: number): AsyncGenerator<number> {
  await Bun.sleep(delayMs);
  yield 1;
  yield 2;
}

describe("withFirstEventDeadline", () => {
  test("passes every event through when the first one is in time", async () => {
    const seen: number[] = [];
    for await (const n of withFirstEventDeadline(numbers(0), 1_000, () => {})) seen.push(n);
    expect(seen).toEqual([1, 2]);
  });

  test("fails, and calls onTimeout, when nothing arrives in time", async () => {
    let timedOut = false;
    const never = (async function* (): AsyncGenerator<number> {
      await new Promise(() => {});
    })();
    const run = async () => {
      for await (const _ of withFirstEventDeadline(never, 30, () => (timedOut = true))) {
      }
    };
    await expect(run()).rejects.toThrow(new EngineError("codex produced no event within 30 ms"));
    expect(timedOut).toBe(true);
  });

  test("later events may take longer than the deadline", async () => {
    async function* slowSecond(): AsyncGenerator<number> {
      yield 1;
      await Bun.sleep(60);
      yield 2;
    }
    const seen: number[] = [];
    for await (const n of withFirstEventDeadline(slowSecond(), 30, () => {})) seen.push(n);
    expect(seen).toEqual([1, 2]);
  });
});

describe("locateCodex", () => {
  test("the SDK's own codex, with its helper directory", () => {
    const found = locateCodex({ explicitPath: undefined, pathEnv: "", executableDir: dir });
    expect(found.path).toEndWith("/vendor/x86_64-unknown-linux-musl/bin/codex");
    expect(found.pathDirs).toEqual([found.path.replace(/bin\/codex$/, "codex-path")]);
    expect(probeCodex(found)).toMatch(/^codex-cli \d+\.\d+\.\d+$/);
  });

  test("an explicit path wins", () => {
    const fake = script("codex-explicit", "echo codex-cli 9.9.9");
    expect(locateCodex({ explicitPath: fake, pathEnv: "", executableDir: dir })).toEqual({ path: fake, pathDirs: [] });
  });

  test.each([
    ["missing", join(dir, "nope")],
    ["not executable", script("codex-noexec", "exit 0", 0o644)],
    ["a directory", dir],
  ])("an explicit path that is %s is an error", (_, path) => {
    expect(() => locateCodex({ explicitPath: path, pathEnv: "", executableDir: dir })).toThrow(
      new EngineError(`codex binary ${path} is missing or not executable`),
    );
  });

  test("a codex that exits non-zero fails the probe", () => {
    const path = script("codex-fails", "exit 4");
    expect(() => probeCodex({ path, pathDirs: [] })).toThrow(
      new EngineError(`codex binary ${path} does not run: --version exited with 4`),
    );
  });

  test("a program that is not codex fails the probe", () => {
    const path = script("not-codex", "echo hello");
    expect(() => probeCodex({ path, pathDirs: [] })).toThrow(new EngineError(`${path} is not codex: --version printed "hello"`));
  });
});

describe("the SDK engine with a broken codex", () => {
  const options = {
    env: { PATH: process.env.PATH ?? "" },
    bypassApprovalsAndSandbox: true,
    firstEventTimeoutMs: 5_000,
    exitGraceMs: 5_000,
    log: createLogger("off"),
    lean: false,
    configOverrides: [],
  };
  const turn = { input: "x".repeat(512 * 1024), workDir: dir, signal: new AbortController().signal };

  async function drain(events: AsyncIterable<unknown>): Promise<unknown> {
    try {
      for await (const _ of events) {
      }
      return "ended";
    } catch (err) {
      return err;
    }
  }

  test("a binary that disappeared fails the turn at once instead of hanging", async () => {
    const path = script("codex-vanishing", "exit 0");
    const engine = createSdkEngine({ ...options, codex: { path, pathDirs: [] } });
    rmSync(path);
    expect(await drain(engine.runTurn(turn))).toEqual(new EngineError(`codex binary ${path} is missing or not executable`));
  });
});

describe("the SDK engine once codex has ended the turn", () => {
  // A codex that ends its turn at once, then stays until $FAKE_DIR/release exists. Its answer says
  // whether the codex that ran before it (its pid in $FAKE_DIR/pid) was still alive when it started.
  const lingering = script(
    "codex-lingering",
    [
      "cat > /dev/null",
      'previous=none; [ -f "$FAKE_DIR/pid" ] && { kill -0 "$(cat "$FAKE_DIR/pid")" 2>/dev/null && previous=alive || previous=gone; }',
      'echo $$ > "$FAKE_DIR/pid"',
      `echo '{"type":"thread.started","thread_id":"thread-1"}'`,
      `echo '{"type":"turn.started"}'`,
      `printf '{"type":"item.completed","item":{"id":"m","type":"agent_message","text":"previous: %s"}}\n' "$previous"`,
      `echo '{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}}'`,
      // Gone with the test's directory, should a test fail before it releases it.
      'while [ -d "$FAKE_DIR" ] && [ ! -f "$FAKE_DIR/release" ]; do sleep 0.02; done',
      // The first one takes longer to exit once released: close() must wait for it too.
      '[ "$previous" = none ] && sleep 0.3',
      "exit 0",
    ].join("\n"),
  );

  function engineIn(fakeDir: string, exitGraceMs = 10_000) {
    return createSdkEngine({
      codex: { path: lingering, pathDirs: [] },
      env: { PATH: process.env.PATH ?? "", FAKE_DIR: fakeDir },
      bypassApprovalsAndSandbox: true,
      firstEventTimeoutMs: 5_000,
      exitGraceMs,
      log: createLogger("off"),
      lean: false,
      configOverrides: [],
    });
  }

  async function eventsOf(events: AsyncIterable<unknown>): Promise<Array<{ type: string; item?: { text?: string } }>> {
    const seen = [];
    for await (const event of events) seen.push(event as { type: string });
    return seen;
  }

  const turn = (threadId?: string) => ({ input: "hi", workDir: dir, threadId, signal: new AbortController().signal });

  test("the turn ends with codex's turn.completed; codex counts as active, and close() waits, until it exits", async () => {
    const fakeDir = mkdtempSync(join(dir, "fake-"));
    const engine = engineIn(fakeDir);
    const events = await eventsOf(engine.runTurn(turn()));
    expect(events.map((event) => event.type)).toEqual(["thread.started", "turn.started", "item.completed", "turn.completed"]);
    const pid = Number(readFileSync(join(fakeDir, "pid"), "utf8"));
    expect(isAlive(pid)).toBe(true);
    expect(engine.activeProcesses?.()).toBe(1);
    let closed = false;
    const closing = engine.close?.().then(() => (closed = true));
    expect(closed).toBe(false);
    writeFileSync(join(fakeDir, "release"), "");
    await closing;
    expect(engine.activeProcesses?.()).toBe(0);
    expect(isAlive(pid)).toBe(false);
  });

  test("a turn that continues the thread starts codex only once the one before has exited, killed after the grace", async () => {
    const fakeDir = mkdtempSync(join(dir, "fake-"));
    const engine = engineIn(fakeDir, 300);
    await eventsOf(engine.runTurn(turn()));
    const next = await eventsOf(engine.runTurn(turn("thread-1")));
    expect(next.find((event) => event.type === "item.completed")?.item?.text).toBe("previous: gone");
    writeFileSync(join(fakeDir, "release"), "");
    await engine.close?.();
  });

  test("a turn on another thread does not wait; close() waits for every codex still exiting, even two of one thread id", async () => {
    const fakeDir = mkdtempSync(join(dir, "fake-"));
    const engine = engineIn(fakeDir);
    await eventsOf(engine.runTurn(turn()));
    const next = await eventsOf(engine.runTurn(turn()));
    expect(next.find((event) => event.type === "item.completed")?.item?.text).toBe("previous: alive");
    expect(engine.activeProcesses?.()).toBe(2);
    writeFileSync(join(fakeDir, "release"), "");
    await engine.close?.();
    expect(engine.activeProcesses?.()).toBe(0);
  });
});
