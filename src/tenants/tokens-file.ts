import { readFileSync, realpathSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { z } from "zod";
import { BEARER_TOKEN } from "../middleware/access";
import type { Tenant } from "./tenant";

/** A tenant and the token that names it. */
export type TenantEntry = { tenant: Tenant; token: string };

/** A tokens file that cannot be used; its message is one line and never holds a token. */
export class TokensFileError extends Error {}

/** Names go into log lines and metric labels: plain words only. */
const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const tokensFileSchema = z
  .object({
    tokens: z
      .array(
        z
          .object({
            name: z.string().regex(TENANT_NAME, "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
            token: z.string(),
            workspace_root: z.string().optional(),
            max_concurrent_turns: z.number().int().positive().optional(),
            admin: z.boolean().optional(),
          })
          .strict(),
      )
      .min(1, "must list at least one tenant"),
  })
  .strict();

export const SHORT_TENANT_TOKEN_WARNING = "is shorter than 16 characters, which makes it easy to guess; use e.g. `openssl rand -hex 32`";

/** A real directory, or undefined when `path` names none. */
function realDirectory(path: string): string | undefined {
  try {
    const real = realpathSync(path);
    return statSync(real).isDirectory() ? real : undefined;
  } catch {
    return undefined;
  }
}

/** Zod's message for an issue never quotes the value (a token); its path names the field. */
function describe(issue: z.core.$ZodIssue): string {
  const field = issue.path.length > 0 ? issue.path.map((part) => (typeof part === "number" ? `[${part}]` : `.${String(part)}`)).join("").replace(/^\./, "") : "the file";
  if (issue.code === "unrecognized_keys") return `${field === "the file" ? "" : `${field}: `}unknown field ${issue.keys.join(", ")}`;
  return `${field}: ${issue.message}`;
}

/**
 * The tenants of a tokens file's text (`source` names the file in messages): names and tokens
 * unique, tokens as a bearer token must be (visible ASCII, warned about under 16 characters),
 * workspace roots absolute and resolved to the real directories. No message quotes a token.
 */
export function parseTokensFile(text: string, source: string): { tenants: TenantEntry[]; warnings: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text around the error, which may be a token.
    throw new TokensFileError(`${source} is not valid JSON`);
  }
  const parsed = tokensFileSchema.safeParse(json);
  if (!parsed.success) throw new TokensFileError(`${source}: ${parsed.error.issues.map(describe).join("; ")}`);
  const warnings: string[] = [];
  const names = new Map<string, number>();
  const tokens = new Map<string, number>();
  const tenants = parsed.data.tokens.map((entry, index) => {
    const at = `${source}: tokens[${index}]`;
    const sameName = names.get(entry.name);
    if (sameName !== undefined) throw new TokensFileError(`${at}.name: "${entry.name}" is also the name of tokens[${sameName}]`);
    names.set(entry.name, index);
    if (entry.token === "") throw new TokensFileError(`${at}.token (${entry.name}): is empty`);
    if (!BEARER_TOKEN.test(entry.token)) {
      throw new TokensFileError(
        `${at}.token (${entry.name}): has characters an Authorization header cannot carry (spaces, control characters or non-ASCII); use visible ASCII, e.g. \`openssl rand -hex 32\``,
      );
    }
    const sameToken = tokens.get(entry.token);
    if (sameToken !== undefined) throw new TokensFileError(`${at}.token (${entry.name}): is also the token of tokens[${sameToken}]; each tenant needs its own`);
    tokens.set(entry.token, index);
    if (entry.token.length < 16) warnings.push(`${source}: the token of ${entry.name} ${SHORT_TENANT_TOKEN_WARNING}`);
    let workspaceRoot: string | undefined;
    if (entry.workspace_root !== undefined) {
      if (!isAbsolute(entry.workspace_root)) throw new TokensFileError(`${at}.workspace_root (${entry.name}): must be an absolute path`);
      workspaceRoot = realDirectory(entry.workspace_root);
      if (workspaceRoot === undefined) throw new TokensFileError(`${at}.workspace_root (${entry.name}): ${entry.workspace_root} is not an existing directory`);
    }
    const tenant: Tenant = {
      name: entry.name,
      admin: entry.admin ?? false,
      ...(workspaceRoot !== undefined && { workspaceRoot }),
      ...(entry.max_concurrent_turns !== undefined && { maxConcurrentTurns: entry.max_concurrent_turns }),
    };
    return { tenant, token: entry.token };
  });
  return { tenants, warnings };
}

/** The tokens file at `path`, parsed; a file that cannot be read is a TokensFileError too. */
export function readTokensFile(path: string): { tenants: TenantEntry[]; warnings: string[] } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new TokensFileError(`cannot read the tokens file ${path}: ${(err as Error).message.split(",")[0]}`);
  }
  return parseTokensFile(text, `tokens file ${path}`);
}
