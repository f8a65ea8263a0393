import { accessSync, constants, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EngineError } from "./types";

export type CodexBinary = {
  path: string;
  /** Helper tools shipped beside codex (e.g. rg) that codex expects on PATH. */
  pathDirs: string[];
};

const PLATFORM_PACKAGES: Record<string, { pkg: string; triple: string }> = {
  "linux-x64": { pkg: "@openai/codex-linux-x64", triple: "x86_64-unknown-linux-musl" },
  "linux-arm64": { pkg: "@openai/codex-linux-arm64", triple: "aarch64-unknown-linux-musl" },
  "darwin-x64": { pkg: "@openai/codex-darwin-x64", triple: "x86_64-apple-darwin" },
  "darwin-arm64": { pkg: "@openai/codex-darwin-arm64", triple: "aarch64-apple-darwin" },
};

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Throws unless `path` is a file this process may execute. Spawning anything else hangs the SDK under Bun. */
export function assertExecutable(path: string): void {
  try {
    if (!statSync(path).isFile()) throw new Error("not a file");
    accessSync(path, constants.X_OK);
  } catch {
    throw new EngineError(`codex binary ${path} is missing or not executable`);
  }
}

function isExecutable(path: string): boolean {
  try {
    assertExecutable(path);
    return true;
  } catch {
    return false;
  }
}

/** The codex that @openai/codex-sdk installs through @openai/codex, as the SDK itself would find it. */
function bundledCodex(): CodexBinary | undefined {
  const platform = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (!platform) return undefined;
  try {
    const requireFromSdk = createRequire(fileURLToPath(import.meta.resolve("@openai/codex-sdk")));
    const codexPackage = requireFromSdk.resolve("@openai/codex/package.json");
    const platformPackage = createRequire(codexPackage).resolve(`${platform.pkg}/package.json`);
    const root = join(dirname(platformPackage), "vendor", platform.triple);
    const path = join(root, "bin", "codex");
    if (!isExecutable(path)) return undefined;
    return { path, pathDirs: [join(root, "codex-path")].filter(isDirectory) };
  } catch {
    return undefined;
  }
}

export type LocateOptions = {
  explicitPath: string | undefined;
  pathEnv: string | undefined;
  executableDir: string;
};

/**
 * Finds codex: an explicit path, then the SDK's own package, then a `codex` beside the server's
 * executable (how the single-file build ships), then PATH. Fails at start-up, not at the first turn.
 */
export function locateCodex({ explicitPath, pathEnv, executableDir }: LocateOptions): CodexBinary {
  if (explicitPath) {
    assertExecutable(explicitPath);
    return { path: explicitPath, pathDirs: [] };
  }
  const bundled = bundledCodex();
  if (bundled) return bundled;
  const beside = join(executableDir, "codex");
  if (isExecutable(beside)) return { path: beside, pathDirs: [] };
  const onPath = Bun.which("codex", { PATH: pathEnv ?? "" });
  if (onPath) return { path: onPath, pathDirs: [] };
  throw new EngineError(
    "codex binary not found: run `bun install` in the checkout, put `codex` on PATH or beside the executable, or pass --codex-path / CODEX_PATH",
  );
}

/**
 * Runs `codex --version`: a binary that exists but cannot run (wrong platform, bad interpreter)
 * would otherwise hang each turn until the first-event deadline. Returns the version line.
 */
export function probeCodex(binary: CodexBinary): string {
  let result: ReturnType<typeof Bun.spawnSync>;
  try {
    result = Bun.spawnSync([binary.path, "--version"], { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  } catch (err) {
    throw new EngineError(`codex binary ${binary.path} cannot be started: ${(err as Error).message}`);
  }
  const output = result.stdout?.toString().trim() ?? "";
  if (result.exitCode !== 0) {
    const reason = result.exitCode === null ? "it did not answer --version" : `--version exited with ${result.exitCode}`;
    throw new EngineError(`codex binary ${binary.path} does not run: ${reason}`);
  }
  if (!output.startsWith("codex")) {
    throw new EngineError(`${binary.path} is not codex: --version printed ${JSON.stringify(output.slice(0, 80))}`);
  }
  return output;
}
