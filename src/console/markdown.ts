/**
 * The subset of Markdown that agents write (paragraphs, headings, lists, quotes, fenced code,
 * inline code, emphasis, links), parsed into a tree. The console turns the tree into DOM nodes with
 * textContent only: agent output is untrusted, so no HTML from it is ever interpreted.
 */

export type Inline =
  | { type: "text"; text: string }
  | { type: "code"; text: string }
  | { type: "strong"; children: Inline[] }
  | { type: "em"; children: Inline[] }
  | { type: "link"; href: string; children: Inline[] };

export type Block =
  | { type: "paragraph"; children: Inline[] }
  | { type: "heading"; level: number; children: Inline[] }
  | { type: "code"; lang: string; text: string }
  | { type: "list"; ordered: boolean; items: Inline[][] }
  | { type: "quote"; children: Inline[] };

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^ {0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^ {0,3}\d{1,9}[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;

/** Only links a click cannot turn into script: http(s) and mailto. */
export function safeHref(href: string): string | undefined {
  try {
    const url = new URL(href);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How far an inline span (code, emphasis, link text) may reach for its closing mark. Agent output
 * is untrusted: unbounded, every unclosed `*` would scan to the end of the text, which makes a
 * long enough message freeze the page.
 */
const SPAN = 500;
const CODE = new RegExp(`(\`+)([\\s\\S]{0,${SPAN}}?[^\`])\\1(?!\`)`, "y");
const STRONG = new RegExp(`(\\*\\*|__)(?=\\S)([\\s\\S]{0,${SPAN}}?\\S)\\1`, "y");
const EM = new RegExp(`(\\*|_)(?=\\S)([\\s\\S]{0,${SPAN}}?\\S)\\1(?![\\w*])`, "y");
const LINK = new RegExp(`\\[([^\\]]{1,${SPAN}})\\]\\(([^)\\s]{1,2048})\\)`, "y");
/** Where an inline span may start; everything between two of these is plain text. */
const MARK = /[`*_[]/g;

function matchAt(pattern: RegExp, text: string, at: number): RegExpExecArray | null {
  pattern.lastIndex = at;
  return pattern.exec(text);
}

export function parseInline(text: string): Inline[] {
  const out: Inline[] = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push({ type: "text", text: plain });
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    MARK.lastIndex = i;
    const mark = MARK.exec(text);
    if (!mark) {
      plain += text.slice(i);
      break;
    }
    plain += text.slice(i, mark.index);
    i = mark.index;
    const char = text[i];
    const code = char === "`" ? matchAt(CODE, text, i) : null;
    if (code?.[2] !== undefined) {
      flush();
      out.push({ type: "code", text: code[2].trim() || code[2] });
      i += code[0].length;
      continue;
    }
    // snake_case: an underscore inside a word never opens emphasis.
    const intraword = char === "_" && /\w/.test(text[i - 1] ?? "");
    const strong = (char === "*" || char === "_") && !intraword ? matchAt(STRONG, text, i) : null;
    if (strong?.[2] !== undefined) {
      flush();
      out.push({ type: "strong", children: parseInline(strong[2]) });
      i += strong[0].length;
      continue;
    }
    const em = (char === "*" || char === "_") && !intraword ? matchAt(EM, text, i) : null;
    if (em?.[2] !== undefined) {
      flush();
      out.push({ type: "em", children: parseInline(em[2]) });
      i += em[0].length;
      continue;
    }
    const link = char === "[" ? matchAt(LINK, text, i) : null;
    const href = link?.[2] === undefined ? undefined : safeHref(link[2]);
    if (link?.[1] !== undefined && href !== undefined) {
      flush();
      out.push({ type: "link", href, children: parseInline(link[1]) });
      i += link[0].length;
      continue;
    }
    plain += char;
    i++;
  }
  flush();
  return out;
}

export function parseMarkdown(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const blocks: Block[] = [];
  let i = 0;
  const collect = (pattern: RegExp): string[] => {
    const taken: string[] = [];
    for (let m = pattern.exec(lines[i] ?? ""); m && i < lines.length; m = pattern.exec(lines[i] ?? "")) {
      taken.push(m[1] ?? "");
      i++;
    }
    return taken;
  };
  while (i < lines.length) {
    const line = lines[i] ?? "";
    const fence = FENCE.exec(line);
    if (fence?.[1] !== undefined) {
      const marker = fence[1];
      const body: string[] = [];
      i++;
      while (i < lines.length && !(lines[i] ?? "").trimStart().startsWith(marker)) body.push(lines[i++] ?? "");
      i++;
      blocks.push({ type: "code", lang: fence[2] ?? "", text: body.join("\n") });
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading?.[1] !== undefined) {
      blocks.push({ type: "heading", level: heading[1].length, children: parseInline(heading[2] ?? "") });
      i++;
      continue;
    }
    if (BULLET.test(line) || NUMBERED.test(line)) {
      const ordered = !BULLET.test(line);
      const items = collect(ordered ? NUMBERED : BULLET);
      blocks.push({ type: "list", ordered, items: items.map(parseInline) });
      continue;
    }
    if (QUOTE.test(line)) {
      blocks.push({ type: "quote", children: parseInline(collect(QUOTE).join("\n")) });
      continue;
    }
    if (line.trim() === "") {
      i++;
      continue;
    }
    const paragraph: string[] = [];
    while (i < lines.length) {
      const next = lines[i] ?? "";
      if (next.trim() === "" || FENCE.test(next) || HEADING.test(next) || BULLET.test(next) || NUMBERED.test(next) || QUOTE.test(next)) break;
      paragraph.push(next.trim());
      i++;
    }
    blocks.push({ type: "paragraph", children: parseInline(paragraph.join("\n")) });
  }
  return blocks;
}
