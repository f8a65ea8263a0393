/**
 * `bun run docs:flags`: writes the flag table of docs/configuration.md from the flags' own
 * definitions (src/help.ts, the same lines as --help). test/docs.test.ts fails while the two differ.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { renderFlagTable } from "../src/help";

export const FLAG_TABLE_START = "<!-- flags: written by `bun run docs:flags` from src/flags.ts, as --help shows them -->";
export const FLAG_TABLE_END = "<!-- /flags -->";
export const CONFIGURATION_MD = new URL("../docs/configuration.md", import.meta.url).pathname;

/** The document with its flag table (between the markers) as the flags say it. */
export function withFlagTable(markdown: string): string {
  const start = markdown.indexOf(FLAG_TABLE_START);
  const end = markdown.indexOf(FLAG_TABLE_END);
  if (start < 0 || end < start) throw new Error(`docs/configuration.md: no ${FLAG_TABLE_START} ... ${FLAG_TABLE_END}`);
  return `${markdown.slice(0, start + FLAG_TABLE_START.length)}\n${renderFlagTable()}\n${markdown.slice(end)}`;
}

if (import.meta.main) {
  writeFileSync(CONFIGURATION_MD, withFlagTable(readFileSync(CONFIGURATION_MD, "utf8")));
}
