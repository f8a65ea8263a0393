/**
 * `--help`, and the flag table of docs/configuration.md: both are written from `args`, so that
 * the two say the same thing in the same words (test/docs.test.ts checks the table).
 */
import { args } from "./flags";

export type FlagLine = { names: string; defaultValue?: string; description: string };

/** Handled before the command runs (cli.ts), so not in `args`. */
const EXITING_FLAGS: FlagLine[] = [
  {
    names: "-v, --version",
    description: "Print this server's version and the version and path of the codex it would run; exit code 1 when no working codex is found",
  },
  { names: "-h, --help", description: "Print this help" },
];

/** Every flag as `--help` lists it: its names with the value it takes, its default, what it does. */
export function flagLines(): FlagLine[] {
  const lines = Object.entries(args).flatMap(([name, def]): FlagLine[] => {
    const alias = "alias" in def ? `-${def.alias}, ` : "";
    const value = "valueHint" in def ? `=<${def.valueHint}>` : "";
    const defaultValue = "default" in def ? String(def.default) : undefined;
    const line = { names: `${alias}--${name}${value}`, ...(defaultValue !== undefined && { defaultValue }), description: def.description };
    return "negativeDescription" in def ? [line, { names: `--no-${name}`, description: def.negativeDescription }] : [line];
  });
  return [...lines, ...EXITING_FLAGS];
}

/** Words of `text` on lines of at most `width` characters after `indent`. */
function wrap(text: string, indent: string, width: number): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  lines.push(indent + line);
  return lines.join("\n");
}

/** The `--help` text; `colour` only for a terminal (cli.ts decides), never for a pipe or a file. */
export function renderHelp(meta: { name: string; version: string; description: string }, colour: boolean): string {
  const paint = (code: number, text: string) => (colour ? `\u001b[${code}m${text}\u001b[0m` : text);
  const options = flagLines().map(({ names, defaultValue, description }) => {
    const described = defaultValue === undefined ? description : `${description} (Default: ${defaultValue})`;
    return `  ${paint(36, names)}\n${wrap(described, "      ", 100)}`;
  });
  return [
    `${meta.description} (${meta.name} v${meta.version})`,
    "",
    `${paint(1, "USAGE")} ${meta.name} [OPTIONS]`,
    "",
    paint(1, "OPTIONS"),
    "",
    options.join("\n"),
    "",
    "Environment variables, codex's configuration and every flag in detail: docs/configuration.md",
  ].join("\n");
}

/** A markdown table cell: `|` would end it (in a code span too), `<` would start HTML. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("<", "&lt;");
}

/** The flag table of docs/configuration.md, from the same lines as `--help`. */
export function renderFlagTable(): string {
  const rows = flagLines().map(
    ({ names, defaultValue, description }) =>
      `| \`${names.replaceAll("|", "\\|")}\` | ${defaultValue === undefined ? "" : `\`${defaultValue}\``} | ${cell(description)} |`,
  );
  return ["| flag | default | what it does |", "|---|---|---|", ...rows].join("\n");
}
