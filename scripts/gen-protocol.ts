/**
 * Writes the TypeScript types of the `codex app-server` protocol, as the installed codex prints
 * them, to generated/codex-protocol/. They are generated rather than committed: 750 files that
 * must match the codex the server runs, and codex writes them in well under a second.
 */
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { locateCodex } from "../src/engine/codex-binary";

const out = join(import.meta.dir, "..", "generated", "codex-protocol");
const codex = locateCodex({ explicitPath: process.env.CODEX_PATH || undefined, pathEnv: process.env.PATH, executableDir: dirname(process.execPath) });
rmSync(out, { recursive: true, force: true });
const result = Bun.spawnSync([codex.path, "app-server", "generate-ts", "--out", out], { stdout: "inherit", stderr: "inherit" });
if (result.exitCode !== 0) {
  process.stderr.write(`codex app-server generate-ts exited with ${result.exitCode}\n`);
  process.exit(1);
}
