/** The scripted model run by hand (`bun test/fixtures/mock-model.ts`), as the README's offline trial does. */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "./fixtures/wait-for";

const SCRIPT = new URL("./fixtures/mock-model.ts", import.meta.url).pathname;

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`${signal} stops it, exit code 0, and removes the CODEX_HOME it printed`, async () => {
    const child = Bun.spawn(["bun", SCRIPT], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    let printed = "";
    void (async () => {
      for await (const chunk of child.stdout) printed += new TextDecoder().decode(chunk);
    })();
    try {
      const home = await waitFor("the export line", () => /^export CODEX_HOME=(\S+) MOCK_API_KEY=test-key$/m.exec(printed)?.[1], 10_000);
      expect(printed).toMatch(/^scripted model on http:\/\/127\.0\.0\.1:\d+\/v1\n/);
      expect(existsSync(join(home, "config.toml"))).toBe(true);
      child.kill(signal);
      expect(await child.exited).toBe(0);
      expect(existsSync(home)).toBe(false);
    } finally {
      child.kill("SIGKILL");
    }
  });
}
