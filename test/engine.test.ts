import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { locateCodex, probeCodex } from "../src/engine/codex-binary";
import { createSdkEngine, withFirstEventDeadline } from "../src/engine/sdk-engine";
import { EngineError } from "../src/engine/types";

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
