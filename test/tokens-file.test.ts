/** The tokens file's parser (table tests), the Tenants it makes (authenticate, reload), and the thread → tenant map. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../src/log";
import { Tenants } from "../src/tenants/tenants";
import { SqliteThreadOwners } from "../src/tenants/thread-owners";
import { parseTokensFile, SHORT_TENANT_TOKEN_WARNING, TokensFileError } from "../src/tenants/tokens-file";

const scratch = mkdtempSync(join(tmpdir(), "tokens-file-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const root = realpathSync(scratch);
symlinkSync(root, join(scratch, "link"));

const ALICE = "alice-token-0123456789";
const BOB = "bob-token-0123456789ab";
const file = (tokens: unknown[]) => JSON.stringify({ tokens });
const SOURCE = "tokens file /etc/t.json";

describe("parseTokensFile", () => {
  const accepted: Array<[string, string, unknown, string[]]> = [
    ["one tenant, only what is required", file([{ name: "alice", token: ALICE }]), [{ tenant: { name: "alice", admin: false }, token: ALICE }], []],
    [
      "every field; the workspace root resolved to its real path",
      file([{ name: "root", token: BOB, admin: true, workspace_root: join(scratch, "link"), max_concurrent_turns: 2 }]),
      [{ tenant: { name: "root", admin: true, workspaceRoot: root, maxConcurrentTurns: 2 }, token: BOB }],
      [],
    ],
    [
      "a short token is taken, with a warning that names the tenant, not the token",
      file([{ name: "bob", token: "short" }]),
      [{ tenant: { name: "bob", admin: false }, token: "short" }],
      [`${SOURCE}: the token of bob ${SHORT_TENANT_TOKEN_WARNING}`],
    ],
  ];
  test.each(accepted)("%s", (_, text, tenants, warnings) => {
    expect(parseTokensFile(text, SOURCE)).toEqual({ tenants: tenants as never, warnings });
  });

  const refused: Array<[string, string, string]> = [
    ["not JSON (the parser's message would quote a token)", `{"tokens":[{"name":"a","token":${ALICE}}]}`, `${SOURCE} is not valid JSON`],
    ["no tokens", "{}", `${SOURCE}: tokens: Invalid input: expected array, received undefined`],
    ["an empty list", file([]), `${SOURCE}: tokens: must list at least one tenant`],
    ["a missing name and token", file([{}]), `${SOURCE}: tokens[0].name: Invalid input: expected string, received undefined; tokens[0].token: Invalid input: expected string, received undefined`],
    ["an unknown field (a typo)", file([{ name: "a", token: ALICE, workspaceRoot: "/" }]), `${SOURCE}: tokens[0]: unknown field workspaceRoot`],
    ["an unknown top-level field", JSON.stringify({ tokens: [{ name: "a", token: ALICE }], extra: 1 }), `${SOURCE}: unknown field extra`],
    ["a name with a space", file([{ name: "al ice", token: ALICE }]), `${SOURCE}: tokens[0].name: must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`],
    ["two tenants of one name", file([{ name: "a", token: ALICE }, { name: "a", token: BOB }]), `${SOURCE}: tokens[1].name: "a" is also the name of tokens[0]`],
    ["two tenants with one token", file([{ name: "a", token: ALICE }, { name: "b", token: ALICE }]), `${SOURCE}: tokens[1].token (b): is also the token of tokens[0]; each tenant needs its own`],
    ["an empty token", file([{ name: "a", token: "" }]), `${SOURCE}: tokens[0].token (a): is empty`],
    [
      "a token no header can carry",
      file([{ name: "a", token: "tok en-0123456789abcdef" }]),
      `${SOURCE}: tokens[0].token (a): has characters an Authorization header cannot carry (spaces, control characters or non-ASCII); use visible ASCII, e.g. \`openssl rand -hex 32\``,
    ],
    ["a relative workspace root", file([{ name: "a", token: ALICE, workspace_root: "srv/a" }]), `${SOURCE}: tokens[0].workspace_root (a): must be an absolute path`],
    ["a missing workspace root", file([{ name: "a", token: ALICE, workspace_root: "/no/such/dir" }]), `${SOURCE}: tokens[0].workspace_root (a): /no/such/dir is not an existing directory`],
    ["a zero turn limit", file([{ name: "a", token: ALICE, max_concurrent_turns: 0 }]), `${SOURCE}: tokens[0].max_concurrent_turns: Too small: expected number to be >0`],
    ["a fractional turn limit", file([{ name: "a", token: ALICE, max_concurrent_turns: 1.5 }]), `${SOURCE}: tokens[0].max_concurrent_turns: Invalid input: expected int, received number`],
    ["admin as a string", file([{ name: "a", token: ALICE, admin: "yes" }]), `${SOURCE}: tokens[0].admin: Invalid input: expected boolean, received string`],
  ];
  test.each(refused)("%s: one line, never the token", (_, text, message) => {
    let error: unknown;
    try {
      parseTokensFile(text, SOURCE);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TokensFileError);
    expect((error as Error).message).toBe(message);
    expect((error as Error).message).not.toContain(ALICE);
    expect((error as Error).message).not.toContain("tok en");
  });
});

describe("Tenants", () => {
  const entries = parseTokensFile(file([{ name: "alice", token: ALICE }, { name: "bob", token: BOB, admin: true }]), SOURCE).tenants;

  test("authenticate: each token names its tenant; any other, a prefix or a longer one, none", () => {
    const tenants = Tenants.fromFile("/unused", entries, createLogger("off"));
    expect(tenants.authenticate(ALICE)).toEqual({ name: "alice", admin: false });
    expect(tenants.authenticate(BOB)).toEqual({ name: "bob", admin: true });
    for (const other of [ALICE.slice(0, -1), `${ALICE}x`, "", "nope"]) expect(tenants.authenticate(other)).toBeUndefined();
    expect(tenants.open).toBe(false);
  });

  test("single: the one token names the implicit admin tenant; without a token every request is its", () => {
    expect(Tenants.single("one-token").authenticate("one-token")).toEqual({ name: "default", admin: true, implicit: true });
    expect(Tenants.single("one-token").open).toBe(false);
    expect(Tenants.single(undefined).open).toBe(true);
  });

  test("reload: rotated, new and removed tokens count at once; a broken file keeps the set and says why in one line, never a token", () => {
    const path = join(scratch, "reload.json");
    writeFileSync(path, file([{ name: "alice", token: ALICE }]));
    const lines: string[] = [];
    const tenants = Tenants.fromFile(path, entries, createLogger("info", (line) => void lines.push(line)));
    tenants.reload();
    expect(tenants.authenticate(ALICE)?.name).toBe("alice");
    expect(tenants.authenticate(BOB)).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`INFO {2}tokens file reloaded path=${path} tenants=1\n$`));

    writeFileSync(path, `{"tokens":[{"name":"alice","token":"${ALICE}-rotated"`);
    tenants.reload();
    expect(tenants.authenticate(ALICE)?.name).toBe("alice");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(new RegExp(`ERROR tokens file not reloaded, the 1 tenants before stay: tokens file ${path} is not valid JSON\n$`));
    expect(lines.join("")).not.toContain(ALICE);

    writeFileSync(path, file([{ name: "alice", token: `${ALICE}-rotated` }, { name: "carol", token: "carol" }]));
    tenants.reload();
    expect(tenants.authenticate(ALICE)).toBeUndefined();
    expect(tenants.authenticate(`${ALICE}-rotated`)?.name).toBe("alice");
    expect(tenants.authenticate("carol")?.name).toBe("carol");
    expect(lines.slice(2).map((line) => line.replace(/^\S+ /, ""))).toEqual([
      `WARN  tokens file ${path}: the token of carol ${SHORT_TENANT_TOKEN_WARNING}\n`,
      `INFO  tokens file reloaded path=${path} tenants=2\n`,
    ]);
  });
});

describe("SqliteThreadOwners", () => {
  test("the first claim stays; forget; the map outlives the process that wrote it", async () => {
    const path = join(scratch, "state", "owners.sqlite");
    const owners = new SqliteThreadOwners(path);
    await owners.claim("t1", "alice");
    await owners.claim("t1", "bob");
    expect(await owners.ownerOf("t1")).toBe("alice");
    expect(await owners.ownerOf("t2")).toBeUndefined();
    await owners.claim("t2", "bob");
    await owners.forget("t2");
    expect(await owners.ownerOf("t2")).toBeUndefined();
    owners.close();
    const reopened = new SqliteThreadOwners(path);
    expect(await reopened.ownerOf("t1")).toBe("alice");
    reopened.close();
  });
});
