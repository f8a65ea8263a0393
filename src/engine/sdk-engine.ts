import { Codex, type Input, type ThreadOptions } from "@openai/codex-sdk";
import type { Logger } from "../log";
import { appServerLaunch } from "./app-server/pool";
import { StandaloneThreadHost } from "./app-server/standalone-thread-host";
import { AppServerThreadStore } from "./app-server/thread-store";
import { assertExecutable } from "./codex-binary";
import { rolloutExists } from "./codex-home";
import { codexOverrides, tomlInline, turnSandbox, untrustedProject, withPathDirs } from "./codex-launch";
import { readUserCodexConfig } from "./lean-profile";
import { createLsbReleaseShim, type LsbReleaseShim } from "./lsb-release-shim";
import { endMarkedProcesses, endMarkedProcessesNow, threadMarker, TURN_MARKER_NAME } from "./turn-processes";
import { type CodexLaunchOptions, type Engine, EngineError, type ThreadEvent, type TurnRequest } from "./types";

export type SdkEngineOptions = CodexLaunchOptions & {
  firstEventTimeoutMs: number;
  /** How long a codex whose turn has ended gets to exit before it is killed. */
  exitGraceMs: number;
  log: Logger;
};

/** The last event of a turn: codex has nothing more to say about it, only its own shut-down to do. */
export function endsTurn(event: ThreadEvent): boolean {
  return event.type === "turn.completed" || event.type === "turn.failed";
}

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

/**
 * One `codex exec` process per turn, through @openai/codex-sdk. A turn ends for the client with
 * codex's `turn.completed` or `turn.failed`; the process then still flushes its session files and
 * exits (about 20 ms of a 150 ms turn here), which the client need not wait for. Until it has
 * exited it counts as active, the server's shut-down waits for it, and a turn that continues its
 * thread starts only after it, so that the next codex reads the whole session.
 */
export function createSdkEngine(options: SdkEngineOptions): Engine {
  const env = withPathDirs(options.env, options.codex.pathDirs);
  let active = 0;
  /** codex processes whose turn has ended but which have not exited yet, by thread. */
  const exiting = new Map<string, { exited: Promise<void>; kill(): void }>();
  /** The markers of every turn whose processes may still run: what a second signal must end. */
  const turnMarkers = new Set<string[]>();
  // Part of the lean profile: made once, when the server listens (or at the first turn, if sooner),
  // so a server that cannot listen makes none; undefined where there is no lsb_release.
  let made: Promise<LsbReleaseShim | undefined> | undefined;
  const shim = (): Promise<LsbReleaseShim | undefined> => {
    if (made) return made;
    made = options.lean ? createLsbReleaseShim(env.PATH).catch(() => undefined) : Promise.resolve(undefined);
    void made.then((ready) => ready && process.once("exit", ready.remove));
    return made;
  };
  const approval: ThreadOptions = options.bypassApprovalsAndSandbox ? { approvalPolicy: "never" } : {};
  // Threads are managed through a `codex app-server` of their own, started at the first request.
  const threadHost = new StandaloneThreadHost({
    launch: appServerLaunch(options, { requestTimeoutMs: options.firstEventTimeoutMs, log: options.log }),
    exists: (threadId) => rolloutExists(options.env, threadId),
    settled: (threadId) => exiting.get(threadId)?.exited,
  });

  return {
    threads: new AppServerThreadStore(threadHost),

    activeProcesses: () => active + threadHost.alive(),

    warm() {
      void shim();
    },

    async close() {
      await Promise.all([...[...exiting.values()].map((lingering) => lingering.exited), threadHost.close()]);
      (await made)?.remove();
    },

    killNow() {
      for (const lingering of exiting.values()) lingering.kill();
      for (const markers of turnMarkers) endMarkedProcessesNow(markers);
      threadHost.kill();
    },

    threadExists: (threadId: string) => rolloutExists(options.env, threadId),

    async *runTurn({ input, workDir, threadId, options: turn = {}, signal }: TurnRequest): AsyncGenerator<ThreadEvent> {
      assertExecutable(options.codex.path);
      if (threadId) await exiting.get(threadId)?.exited;
      active++;
      const stop = new AbortController();
      const abort = () => stop.abort();
      signal.addEventListener("abort", abort, { once: true });
      if (signal.aborted) abort();
      let rest: { events: AsyncGenerator<ThreadEvent>; failed: boolean } | undefined;
      let thread = threadId;
      // codex itself carries the turn's marker, so that ending the turn's processes freezes codex
      // too, before it can start another command; its commands carry it unless codex's
      // shell_environment_policy drops it, and always carry the thread's.
      const turnId = crypto.randomUUID();
      const markers = [`${TURN_MARKER_NAME}=${turnId}`, ...(threadId ? [threadMarker(threadId)] : [])];
      turnMarkers.add(markers);
      let ranCommands = false;
      try {
        const shimDir = (await shim())?.dir;
        // Per turn, so that a config.toml edited while the server runs is respected.
        const userConfig = readUserCodexConfig(options.env);
        const sandbox = turnSandbox(turn.sandbox, options, userConfig);
        const untrusted = untrustedProject(workDir, sandbox, userConfig);
        const codex = new Codex({
          codexPathOverride: options.codex.path,
          env: { ...(shimDir ? withPathDirs(env, [shimDir]) : env), [TURN_MARKER_NAME]: turnId },
          // Before --codex-config, which wins.
          configOverrides: [...(untrusted ? [`projects=${tomlInline(untrusted)}`] : []), ...codexOverrides(options)],
        });
        // The work_dir is checked by the server, and a turn may run in any directory, repo or not.
        const perThread: ThreadOptions = {
          ...approval,
          sandboxMode: sandbox,
          ...(turn.model && { model: turn.model }),
          ...(turn.reasoningEffort && { modelReasoningEffort: turn.reasoningEffort }),
          workingDirectory: workDir,
          skipGitRepoCheck: true,
        };
        const sdkThread = threadId ? codex.resumeThread(threadId, perThread) : codex.startThread(perThread);
        const prompt: Input = turn.images?.length
          ? [{ type: "text", text: input }, ...turn.images.map((path) => ({ type: "local_image" as const, path }))]
          : input;
        const { events } = await sdkThread.runStreamed(prompt, { signal: stop.signal, outputSchema: turn.outputSchema });
        const turnEvents = withFirstEventDeadline(events, options.firstEventTimeoutMs, abort);
        try {
          for (let next = await turnEvents.next(); !next.done; next = await turnEvents.next()) {
            if (next.value.type === "thread.started" && !threadId) {
              thread = next.value.thread_id;
              markers.push(threadMarker(thread));
            }
            if (next.value.type === "item.started" && next.value.item.type === "command_execution") ranCommands = true;
            // Set before the yield: a client gone once it has the turn's end stops nothing.
            if (endsTurn(next.value)) rest = { events: turnEvents, failed: next.value.type === "turn.failed" };
            yield next.value;
            if (rest) return;
          }
        } finally {
          // Stopping early (the client went away) kills codex; ending with the turn lets it exit.
          if (!rest) await turnEvents.return(undefined);
        }
      } finally {
        signal.removeEventListener("abort", abort);
        if (rest) letExit(rest.events, rest.failed, stop, thread, () => endTurnProcesses(markers, ranCommands));
        else {
          // Stopped, or codex failed: whatever the turn started ends before the turn does.
          await endTurnProcesses(markers, true);
          active--;
        }
      }
    },
  };

  /**
   * Ends what a turn left running. A turn that completed without a command has nothing to end;
   * one that was stopped may have been stopped as its first command started.
   */
  async function endTurnProcesses(markers: string[], mayHaveAny: boolean): Promise<void> {
    if (mayHaveAny) await endMarkedProcesses(markers);
    turnMarkers.delete(markers);
  }

  /** Reads what is left of a finished turn's stream until codex has exited, killing it after the grace, then `ended`. */
  function letExit(
    rest: AsyncGenerator<ThreadEvent>,
    failed: boolean,
    stop: AbortController,
    thread: string | undefined,
    ended: () => Promise<void>,
  ): void {
    const key = thread ?? crypto.randomUUID();
    const timer = setTimeout(() => stop.abort(), options.exitGraceMs);
    const drain = async () => {
      try {
        for (let next = await rest.next(); !next.done; next = await rest.next()) {
          options.log.debug("codex event after its turn ended, not sent", { thread_id: thread, type: next.value.type });
        }
      } catch (err) {
        // The client already has the turn's outcome from codex, and codex exits non-zero after a failed one.
        options.log[failed ? "debug" : "warn"]("codex exited badly after its turn ended", { thread_id: thread, error: (err as Error).message });
      } finally {
        clearTimeout(timer);
        await ended();
        active--;
        if (exiting.get(key) === lingering) exiting.delete(key);
      }
    };
    const lingering = { exited: drain(), kill: () => stop.abort() };
    exiting.set(key, lingering);
  }
}
