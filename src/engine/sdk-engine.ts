import { Codex, type Input, type ThreadOptions } from "@openai/codex-sdk";
import { assertExecutable } from "./codex-binary";
import { rolloutExists } from "./codex-home";
import { codexOverrides, withPathDirs } from "./codex-launch";
import { createLsbReleaseShim, type LsbReleaseShim } from "./lsb-release-shim";
import { type CodexLaunchOptions, type Engine, EngineError, type ThreadEvent, type TurnRequest } from "./types";

export type SdkEngineOptions = CodexLaunchOptions & { firstEventTimeoutMs: number };


/**
 * Yields `events`, but fails if the first one does not arrive within `ms`: under Bun a codex that
 * cannot start may produce neither an event nor an error, and the turn would hang forever.
 */
export async function* withFirstEventDeadline<T>(
  events: AsyncIterator<T>,
  ms: number,
  onTimeout: () => void,
): AsyncGenerator<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      onTimeout();
      reject(new EngineError(`codex produced no event within ${ms} ms`));
    }, ms);
  });
  try {
    const first = await Promise.race([events.next(), deadline]);
    clearTimeout(timer);
    if (first.done) return;
    yield first.value;
    for (;;) {
      const next = await events.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
    // A hung iterator never settles its pending next(), so waiting for its return() would hang too.
    if (!timedOut) await events.return?.();
  }
}

/**
 * The SDK writes the prompt to codex's stdin without an error listener: a codex that exits before
 * reading it raises EPIPE outside any promise, where it would take the whole server down.
 */
export function isChildPipeError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "EPIPE" || code === "ECONNRESET";
}

/** One `codex exec` process per turn, through @openai/codex-sdk. */
export function createSdkEngine(options: SdkEngineOptions): Engine {
  const env = withPathDirs(options.env, options.codex.pathDirs);
  let active = 0;
  // Part of the lean profile: made once, when the server listens (or at the first turn, if sooner),
  // so a server that cannot listen makes none; undefined where there is no lsb_release.
  let made: Promise<LsbReleaseShim | undefined> | undefined;
  const shim = (): Promise<LsbReleaseShim | undefined> => {
    if (made) return made;
    made = options.lean ? createLsbReleaseShim(env.PATH).catch(() => undefined) : Promise.resolve(undefined);
    void made.then((ready) => ready && process.once("exit", ready.remove));
    return made;
  };
  const threadOptions: ThreadOptions = options.bypassApprovalsAndSandbox
    ? { sandboxMode: "danger-full-access", approvalPolicy: "never" }
    : {};

  return {
    activeProcesses: () => active,

    warm() {
      void shim();
    },

    async close() {
      (await made)?.remove();
    },

    threadExists: (threadId: string) => rolloutExists(options.env, threadId),

    async *runTurn({ input, workDir, threadId, options: turn = {}, signal }: TurnRequest): AsyncGenerator<ThreadEvent> {
      assertExecutable(options.codex.path);
      active++;
      const stop = new AbortController();
      const abort = () => stop.abort();
      signal.addEventListener("abort", abort, { once: true });
      if (signal.aborted) abort();
      try {
        const shimDir = (await shim())?.dir;
        const codex = new Codex({
          codexPathOverride: options.codex.path,
          env: shimDir ? withPathDirs(env, [shimDir]) : env,
          // Per turn, so that a config.toml edited while the server runs is respected.
          configOverrides: codexOverrides(options),
        });
        // The work_dir is checked by the server, and a turn may run in any directory, repo or not.
        const perThread: ThreadOptions = {
          ...threadOptions,
          ...(turn.sandbox && { sandboxMode: turn.sandbox }),
          ...(turn.model && { model: turn.model }),
          ...(turn.reasoningEffort && { modelReasoningEffort: turn.reasoningEffort }),
          workingDirectory: workDir,
          skipGitRepoCheck: true,
        };
        const thread = threadId ? codex.resumeThread(threadId, perThread) : codex.startThread(perThread);
        const prompt: Input = turn.images?.length
          ? [{ type: "text", text: input }, ...turn.images.map((path) => ({ type: "local_image" as const, path }))]
          : input;
        const { events } = await thread.runStreamed(prompt, { signal: stop.signal, outputSchema: turn.outputSchema });
        yield* withFirstEventDeadline(events, options.firstEventTimeoutMs, abort);
      } finally {
        // The SDK has reaped codex by the time its event stream ends.
        active--;
        signal.removeEventListener("abort", abort);
      }
    },
  };
}
