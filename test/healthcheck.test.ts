/**
 * scripts/healthcheck.sh, the container image's HEALTHCHECK, against a real server: it must ask the
 * port the server listens on, whatever the flags said (the image once probed 8081 whatever --addr was).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { startCli } from "./fixtures/cli-process";
import { useScriptedCodex } from "./fixtures/turns";

const SCRIPT = new URL("../scripts/healthcheck.sh", import.meta.url).pathname;
const scripted = useScriptedCodex();

async function healthcheck(pid: number) {
  const child = Bun.spawn(["bash", SCRIPT, String(pid)], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  return { code, stderr };
}

describe("the image's health check", () => {
  test("the Dockerfile's HEALTHCHECK runs this script, copied to the path it runs", () => {
    const dockerfile = readFileSync(new URL("../Dockerfile", import.meta.url), "utf8");
    const command = /^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    const [shell, path] = JSON.parse(command ?? "[]") as string[];
    expect(shell).toBe("bash");
    expect(dockerfile).toContain(`\nCOPY scripts/healthcheck.sh ${path}\n`);
  });

  // Port 0: the kernel picks the port, so only the listening socket can tell it.
  for (const addr of ["127.0.0.1:0", "[::1]:0", "0.0.0.0:0", "[::]:0"]) {
    test(`a server started with --addr ${addr}: healthy; once it has stopped: not`, async () => {
      const server = await startCli(["--addr", addr], scripted.home.env);
      try {
        expect(await healthcheck(server.process.pid)).toEqual({ code: 0, stderr: "" });
      } finally {
        expect(await server.stop()).toBe(0);
      }
      expect(await healthcheck(server.process.pid)).toEqual({ code: 1, stderr: "healthcheck: no server process\n" });
    });
  }

  test("a process that listens on no TCP port: unhealthy, and says why", async () => {
    const idle = Bun.spawn(["sleep", "60"]);
    try {
      expect(await healthcheck(idle.pid)).toEqual({ code: 1, stderr: `healthcheck: process ${idle.pid} listens on no TCP port\n` });
    } finally {
      idle.kill();
    }
  });

  test("a process that listens but is not healthy: unhealthy", async () => {
    // The scripted model listens in this test process, and answers /health with 404.
    expect(await healthcheck(process.pid)).toEqual({ code: 1, stderr: "" });
  });
});
