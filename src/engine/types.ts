import type { ThreadEvent } from "@openai/codex-sdk";

/** The SDK's event shapes are the contract of every engine, whatever runs codex underneath. */
export type { ThreadEvent };

export const REASONING_EFFORTS = ["minimal", "low", "medium", "high", "xhigh"] as const;
/** Sandboxes a request may ask for: never looser than the server's own. */
export const REQUEST_SANDBOXES = ["read-only", "workspace-write"] as const;

/** What a request may choose for its own turn, already checked against the server's policy. */
export type TurnOptions = {
  model?: string;
  reasoningEffort?: (typeof REASONING_EFFORTS)[number];
  sandbox?: (typeof REQUEST_SANDBOXES)[number];
  /** JSON Schema the final agent message must satisfy. */
  outputSchema?: Record<string, unknown>;
  /** Absolute paths of local images sent with the message. */
  images?: string[];
};

export type TurnRequest = {
  input: string;
  workDir: string;
  /** Continue this thread instead of starting a new one. */
  threadId?: string;
  options?: TurnOptions;
  /** Aborting it ends the turn and whatever process runs it. */
  signal: AbortSignal;
};

export interface Engine {
  runTurn(request: TurnRequest): AsyncIterable<ThreadEvent>;
  /** Whether a thread can be continued; engines that cannot tell leave it out. */
  threadExists?(threadId: string): boolean;
  /** codex processes running now, for /metrics. */
  activeProcesses?(): number;
}

/** codex could not run the turn at all (missing binary, crash, no output): not the model's fault. */
export class EngineError extends Error {}
