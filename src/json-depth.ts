/**
 * Whether JSON text nests arrays and objects more than `limit` deep (the outermost one is depth 1).
 * It reads the text once, without parsing it and without recursion, so that a body nested 20,000
 * deep is refused before it reaches code that walks JSON recursively and would overflow its stack
 * (such a body once ended its turn with "Maximum call stack size exceeded."). Brackets inside
 * strings do not count. For valid JSON the count is exact; invalid JSON is refused by the parser
 * anyway.
 */
export function exceedsJsonDepth(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === BACKSLASH) i++;
      else if (char === QUOTE) inString = false;
    } else if (char === QUOTE) inString = true;
    else if (char === OPEN_BRACE || char === OPEN_BRACKET) {
      if (++depth > limit) return true;
    } else if (char === CLOSE_BRACE || char === CLOSE_BRACKET) depth--;
  }
  return false;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
