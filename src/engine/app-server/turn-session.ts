import type { ApprovalRequestedEvent, EngineEvent } from "../types";
import type { AppServerConnection } from "./connection";
import { TurnEventMapper } from "./event-mapper";
import { TurnQueue } from "./turn-queue";

/** An approval codex asked for, waiting for a client's answer (or its timeout). */
export type PendingApproval = {
  id: string;
  rpcId: number | string;
  connection: AppServerConnection;
  turn: TurnSession;
  timer: ReturnType<typeof setTimeout>;
};

/** One turn on an app-server: its events on their way to the client, and what codex asked of it. */
export class TurnSession {
  readonly queue = new TurnQueue<EngineEvent>();
  readonly mapper = new TurnEventMapper((event) => this.queue.push(event));
  turnId: string | undefined;
  /**
   * What codex sent before turn/start's answer (it comes in one burst), handled once the turn's id
   * tells whether it is this turn's or the late end of an interrupted one, and in the order sent.
   */
  readonly early: Array<() => void> = [];
  started = false;
  readonly approvals = new Set<PendingApproval>();
  /** File changes by item id: an approval request names only the item. */
  readonly changes = new Map<string, NonNullable<ApprovalRequestedEvent["changes"]>>();
}

