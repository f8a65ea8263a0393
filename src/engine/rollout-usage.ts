import type { Usage } from "./types";

type TokenTotals = {
  input_tokens?: number;
  cached_input_tokens?: number;
  cache_write_input_tokens?: number;
  output_tokens?: number;
  reasoning_output_tokens?: number;
};

type RolloutLine = {
  type?: string;
  payload?: { type?: string; turn_id?: string; info?: { total_token_usage?: TokenTotals } | null };
};

/**
 * The token usage of each turn of a thread, by turn id, from its rollout file: codex's thread API
 * keeps no usage per turn, its rollout does. A turn's usage is the thread's totals at the last
 * `token_count` event of the turn, which is what `turn.completed` reports on either engine. Only
 * the lines that can matter are parsed; a line being written (a turn still running) is skipped.
 * Empty when the file cannot be read.
 */
export async function rolloutTurnUsage(path: string): Promise<Map<string, Usage>> {
  const usage = new Map<string, Usage>();
  let content: string;
  try {
    const file = Bun.file(path);
    content = path.endsWith(".zst") ? new TextDecoder().decode(Bun.zstdDecompressSync(await file.bytes())) : await file.text();
  } catch {
    return usage;
  }
  let turnId: string | undefined;
  for (const line of content.split("\n")) {
    // A cheap test first: most lines are neither, and some are long.
    if (!line.includes('"task_started"') && !line.includes('"token_count"')) continue;
    const record = parseLine(line);
    if (record?.type !== "event_msg") continue;
    if (record.payload?.type === "task_started") turnId = record.payload.turn_id;
    const totals = record.payload?.type === "token_count" ? record.payload.info?.total_token_usage : undefined;
    if (turnId !== undefined && totals) usage.set(turnId, toUsage(totals));
  }
  return usage;
}

function parseLine(line: string): RolloutLine | undefined {
  try {
    return JSON.parse(line) as RolloutLine;
  } catch {
    return undefined;
  }
}

function toUsage(totals: TokenTotals): Usage {
  return {
    input_tokens: totals.input_tokens ?? 0,
    cached_input_tokens: totals.cached_input_tokens ?? 0,
    cache_write_input_tokens: totals.cache_write_input_tokens ?? 0,
    output_tokens: totals.output_tokens ?? 0,
    reasoning_output_tokens: totals.reasoning_output_tokens ?? 0,
  };
}
