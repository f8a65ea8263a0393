/**
 * The parts of the `codex app-server` protocol this server speaks, typed from what the installed
 * codex generates (`bun run gen:protocol`). Type-only: nothing here exists at run time.
 */
import type { ClientRequest } from "../../../generated/codex-protocol/ClientRequest";
import type { InitializeResponse } from "../../../generated/codex-protocol/InitializeResponse";
import type { ServerNotification } from "../../../generated/codex-protocol/ServerNotification";
import type { ServerRequest } from "../../../generated/codex-protocol/ServerRequest";
import type { ThreadResumeResponse } from "../../../generated/codex-protocol/v2/ThreadResumeResponse";
import type { ThreadStartResponse } from "../../../generated/codex-protocol/v2/ThreadStartResponse";
import type { TurnInterruptResponse } from "../../../generated/codex-protocol/v2/TurnInterruptResponse";
import type { TurnStartResponse } from "../../../generated/codex-protocol/v2/TurnStartResponse";
import type { ThreadUnsubscribeResponse } from "../../../generated/codex-protocol/v2/ThreadUnsubscribeResponse";
import type { ThreadArchiveResponse } from "../../../generated/codex-protocol/v2/ThreadArchiveResponse";
import type { ThreadForkResponse } from "../../../generated/codex-protocol/v2/ThreadForkResponse";
import type { ThreadListResponse } from "../../../generated/codex-protocol/v2/ThreadListResponse";
import type { ThreadReadResponse } from "../../../generated/codex-protocol/v2/ThreadReadResponse";
import type { ThreadSetNameResponse } from "../../../generated/codex-protocol/v2/ThreadSetNameResponse";
import type { ThreadTurnsListResponse } from "../../../generated/codex-protocol/v2/ThreadTurnsListResponse";

export type { ServerNotification, ServerRequest };
export type { Thread } from "../../../generated/codex-protocol/v2/Thread";
export type { ThreadItem } from "../../../generated/codex-protocol/v2/ThreadItem";
export type { ThreadSourceKind } from "../../../generated/codex-protocol/v2/ThreadSourceKind";
export type { Turn } from "../../../generated/codex-protocol/v2/Turn";
export type { ThreadTokenUsage } from "../../../generated/codex-protocol/v2/ThreadTokenUsage";
export type { SandboxPolicy } from "../../../generated/codex-protocol/v2/SandboxPolicy";
export type { SandboxMode } from "../../../generated/codex-protocol/v2/SandboxMode";
export type { AskForApproval } from "../../../generated/codex-protocol/v2/AskForApproval";
export type { UserInput } from "../../../generated/codex-protocol/v2/UserInput";

type Responses = {
  initialize: InitializeResponse;
  "thread/start": ThreadStartResponse;
  "thread/resume": ThreadResumeResponse;
  "thread/unsubscribe": ThreadUnsubscribeResponse;
  "thread/list": ThreadListResponse;
  "thread/read": ThreadReadResponse;
  "thread/turns/list": ThreadTurnsListResponse;
  "thread/name/set": ThreadSetNameResponse;
  "thread/archive": ThreadArchiveResponse;
  "thread/fork": ThreadForkResponse;
  "turn/start": TurnStartResponse;
  "turn/interrupt": TurnInterruptResponse;
};

export type Method = keyof Responses;
export type ParamsOf<M extends Method> = Extract<ClientRequest, { method: M }>["params"];
export type ResultOf<M extends Method> = Responses[M];
