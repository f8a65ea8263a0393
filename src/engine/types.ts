import type { ThreadEvent, Usage } from "@openai/codex-sdk";

/** The SDK's event shapes are the contract of every engine, whatever runs codex underneath. */
export type { ThreadEvent, Usage };

export type TurnRequest = {
  input: string;
  workDir: string;
  /** Aborting it ends the turn and whatever process runs it. */
  signal: AbortSignal;
};

export interface Engine {
  runTurn(request: TurnRequest): AsyncIterable<ThreadEvent>;
}

/** codex could not run the turn at all (missing binary, crash, no output): not the model's fault. */
export class EngineError extends Error {}
