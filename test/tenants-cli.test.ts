/**
 * Tenants in the server process (`bun src/cli.ts`): SIGHUP rereads the tokens file (rotation,
 * removal, a broken file kept out), ownership outlives a restart on the same state dir, and a
 * tokens file that cannot be used stops start-up with one line.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CliProcess, runCli, startCli } from "./fixtures/cli-process";
import { readSse } from "./fixtures/sse";
import { as, TOKENS, type TenantName, writeTokensFile } from "./fixtures/tenants";
import { doneOf, postMessage, useScriptedCodex } from "./fixtures/turns";
import { waitFor } from "./fixtures/wait-for";

const scripted = useScriptedCodex();

function start(tokensFile: string, stateDir: string): Promise<CliProcess> {
  return startCli(["-a", "127.0.0.1:0", "--tokens-file", tokensFile, "--state-dir", stateDir], {
    ...scripted.home.env,
    CODEX_SERVER_AUTH_TOKEN: undefined,
    CODEX_SERVER_AUTH_TOKEN_FILE: undefined,
  });
}

const status = async (cli: CliProcess, path: string, headers: Record<string, string>) => (await fetch(`${cli.url}${path}`, { headers })).status;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("SIGHUP", () => {
  test("rotated, new and removed tokens count from the next request; a removed tenant's running turn finishes; the server keeps running", async () => {
    const dir = mkdtempSync(join(scripted.scratch, "sighup-"));
    const path = join(dir, "tokens.json");
    writeTokensFile(path);
    const cli = await start(path, join(dir, "state"));
    try {
      expect(cli.stdout()).toContain(`Auth: 3 tenants from ${path} (SIGHUP reloads it)`);
      expect(await status(cli, "/runs", as("alice"))).toBe(200);
      const bobsTurn = postMessage(cli.url, { type: "user_message", message: "sleep 1500 finished anyway", id: "bobs-turn" }, { headers: as("bob") });
      await waitFor("bob's turn to run", async () => (await fetch(`${cli.url}/runs/bobs-turn`, { headers: as("root") })).status === 200);

      const rotated = `${TOKENS.alice}-rotated`;
      writeFileSync(path, JSON.stringify({ tokens: [{ name: "alice", token: rotated }, { name: "root", token: TOKENS.root, admin: true }, { name: "carol", token: "carol-token-0123456789" }] }));
      cli.process.kill("SIGHUP");
      await waitFor("the reload", () => cli.stderr().includes("tokens file reloaded"));
      expect(await status(cli, "/runs", as("alice"))).toBe(401);
      expect(await status(cli, "/runs", bearer(rotated))).toBe(200);
      expect(await status(cli, "/runs", bearer("carol-token-0123456789"))).toBe(200);
      expect(await status(cli, "/runs", as("bob"))).toBe(401);
      const { frames } = await readSse(await bobsTurn);
      expect(doneOf(frames)).toMatchObject({ status: "completed", final_response: "finished anyway" });

      writeFileSync(path, `{"tokens":[{"name":"alice","token":"${rotated}-again"}`);
      cli.process.kill("SIGHUP");
      await waitFor("the refusal", () => cli.stderr().includes("tokens file not reloaded"));
      expect(await status(cli, "/runs", bearer(rotated))).toBe(200);
      expect(await status(cli, "/runs", bearer(`${rotated}-again`))).toBe(401);
      const errors = cli.stderr().split("\n").filter((line) => line.includes("ERROR"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(new RegExp(`ERROR tokens file not reloaded, the 3 tenants before stay: tokens file ${path} is not valid JSON$`));
      for (const token of [...Object.values(TOKENS), rotated]) expect(cli.stderr()).not.toContain(token);
      expect(cli.process.exitCode).toBeNull();
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });
});

describe("ownership", () => {
  test("survives a restart on the same state dir: bob still gets 404 for alice's thread", async () => {
    const dir = mkdtempSync(join(scripted.scratch, "restart-"));
    const path = join(dir, "tokens.json");
    writeTokensFile(path);
    const stateDir = join(dir, "state");
    const first = await start(path, stateDir);
    let thread: string;
    try {
      const { frames } = await readSse(await postMessage(first.url, { type: "user_message", message: "say before the restart" }, { headers: as("alice") }));
      thread = doneOf(frames).thread_id as string;
    } finally {
      expect(await first.stop()).toBe(0);
    }
    const second = await start(path, stateDir);
    try {
      const read = async (tenant: TenantName) => {
        const res = await fetch(`${second.url}/threads/${thread}`, { headers: as(tenant) });
        return { status: res.status, body: await res.text() };
      };
      expect(await read("bob")).toEqual({ status: 404, body: `{"error":{"code":"thread_not_found","message":"No codex thread ${thread} is stored here."}}` });
      expect((await read("alice")).status).toBe(200);
      expect((await read("root")).status).toBe(200);
      const continued = await postMessage(second.url, { type: "user_message", message: "say mine", thread_id: thread }, { headers: as("bob") });
      expect(continued.status).toBe(404);
      await continued.text();
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});

describe("start-up", () => {
  test("a tokens file that does not parse, or one beside a token: exit 2 with one line, never a token", async () => {
    const dir = mkdtempSync(join(scripted.scratch, "startup-"));
    const broken = join(dir, "broken.json");
    writeFileSync(broken, `{"tokens":[{"name":"alice","token":"${TOKENS.alice}"`);
    const good = join(dir, "tokens.json");
    writeTokensFile(good);
    const cases: Array<[string[], Record<string, string | undefined>, string]> = [
      [["--tokens-file", broken], {}, `error: tokens file ${broken} is not valid JSON\n`],
      [["--tokens-file", good, "--auth-token", TOKENS.bob], {}, "error: --tokens-file and --auth-token are both set: with a tokens file, every token is in it\n"],
      [[], { CODEX_SERVER_TOKENS_FILE: good, CODEX_SERVER_AUTH_TOKEN: TOKENS.bob }, "error: CODEX_SERVER_TOKENS_FILE and CODEX_SERVER_AUTH_TOKEN are both set: with a tokens file, every token is in it\n"],
    ];
    for (const [args, env, stderr] of cases) {
      const run = await runCli(["-a", "127.0.0.1:0", ...args], { ...scripted.home.env, CODEX_SERVER_AUTH_TOKEN: undefined, CODEX_SERVER_AUTH_TOKEN_FILE: undefined, ...env });
      expect(run).toEqual({ code: 2, stdout: "", stderr });
    }
  });
});
