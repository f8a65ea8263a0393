import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A directory to put first on codex's PATH, holding an `lsb_release` that answers at once. */
export type LsbReleaseShim = { dir: string; remove(): void };

/** Quotes `text` for sh: inside single quotes nothing is special but the quote itself. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * codex names the host's OS in its User-Agent through the os_info crate, which runs
 * `lsb_release -a` twice every time `codex exec` starts. On Debian and Ubuntu that is a shell
 * script starting a dozen processes: about 70 ms of wall time and 30 ms of CPU of a 220 ms lean
 * turn, measured here. So the server runs the real one once and hands codex, first on its PATH, an
 * `lsb_release` that prints the same answer with a shell builtin; anything but `-a` still goes to
 * the real one, so the agent's commands, which inherit that PATH, get what they always got.
 * No `lsb_release` on PATH (slim images): os_info reads /etc/os-release itself, nothing to do.
 */
export async function createLsbReleaseShim(pathEnv: string | undefined): Promise<LsbReleaseShim | undefined> {
  const real = Bun.which("lsb_release", { PATH: pathEnv ?? "" });
  if (!real) return undefined;
  // Asynchronous: the real one takes ~10 ms, which the event loop should not spend waiting.
  const probe = Bun.spawn([real, "-a"], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  const answer = await new Response(probe.stdout).text();
  if ((await probe.exited) !== 0) return undefined;
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), "codex-http-server-"));
  } catch {
    // A read-only or full temp directory costs the saving, never a turn.
    return undefined;
  }
  const script = [
    "#!/bin/sh",
    `[ "$*" = "-a" ] || exec ${shellQuote(real)} "$@"`,
    `printf '%s' ${shellQuote(answer)}`,
    "",
  ].join("\n");
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    writeFileSync(join(dir, "lsb_release"), script, { mode: 0o755 });
  } catch {
    remove();
    return undefined;
  }
  return { dir, remove };
}
