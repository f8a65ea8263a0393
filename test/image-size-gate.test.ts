/** scripts/image-size-gate.sh, which ends scripts/build-image-offline.sh: the sizes it prints and when it fails. */
import { expect, test } from "bun:test";

const SCRIPT = new URL("../scripts/image-size-gate.sh", import.meta.url).pathname;
const CODEX = 296_900_000;
const SERVER = 109_700_000;
const COMPRESSED = 150_000_000;

async function gate(sizes: Array<number | string>, env: Record<string, string> = {}) {
  const child = Bun.spawn(["bash", SCRIPT, ...sizes.map(String)], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

test("within the limit: every size printed, the compressed one too; exit code 0", async () => {
  expect(await gate([CODEX + SERVER + 27_900_000, CODEX, SERVER, COMPRESSED])).toEqual({
    code: 0,
    stdout: [
      "root filesystem:       434500000 bytes (434.5 MB)",
      "codex binary:          296900000 bytes (296.9 MB)",
      "compiled server:       109700000 bytes (109.7 MB)",
      "everything else:       27900000 bytes (27.9 MB), limit 40 MB",
      "compressed (gzip):     150000000 bytes (150.0 MB)",
      "",
    ].join("\n"),
    stderr: "",
  });
});

const cases: Array<[string, number, Record<string, string>, number]> = [
  ["exactly 40 MB beyond codex and the server", 40_000_000, {}, 0],
  ["one byte more", 40_000_001, {}, 1],
  ["a lower limit, IMAGE_EXTRA_LIMIT_MB=20", 27_900_000, { IMAGE_EXTRA_LIMIT_MB: "20" }, 1],
];
for (const [name, extra, env, expected] of cases) {
  test(`${name}: exit code ${expected}`, async () => {
    const { code, stderr } = await gate([CODEX + SERVER + extra, CODEX, SERVER, COMPRESSED], env);
    expect(code).toBe(expected);
    if (expected === 1) expect(stderr).toMatch(/^FAILED: the image holds [\d.]+ MB beyond codex and the server, more than \d+ MB\n$/);
  });
}

test("a size that is not a number of bytes: usage error, exit code 2", async () => {
  expect(await gate(["434.5MB", CODEX, SERVER, COMPRESSED])).toEqual({ code: 2, stdout: "", stderr: `${SCRIPT}: not a number of bytes: "434.5MB"\n` });
  expect((await gate([CODEX, SERVER])).code).toBe(2);
});
