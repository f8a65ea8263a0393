import pkg from "../../package.json" with { type: "json" };
import type { Logger } from "../log";
import { signWebhook } from "./signature";

export const WEBHOOK_EVENTS = ["run.done", "approval.requested"] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

/** One message: its id and body stay the same on every attempt, to every URL it goes to. */
export type WebhookMessage = { type: WebhookEventType; runId: string; data: Record<string, unknown> };

/** What the dispatcher reports about its deliveries; /metrics counts them. */
export type DeliveryObserver = {
  webhookDelivered(type: WebhookEventType): void;
  webhookRetried(type: WebhookEventType): void;
  webhookFailed(type: WebhookEventType): void;
};

/** Waits before the 2nd to 6th attempts: doubling from 20 s, six attempts over about ten minutes. */
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [20_000, 40_000, 80_000, 160_000, 320_000];
export const ATTEMPT_TIMEOUT_MS = 5_000;
/** Deliveries under way at once (each holds its body) before new ones are given up at once. */
const MAX_PENDING = 1_000;

/** ±25 %, so that the retries of many deliveries to a receiver that was down do not all come back at once. */
function spread(delayMs: number): number {
  return delayMs * (0.75 + Math.random() / 2);
}

export type DispatcherOptions = {
  /** The key of the `whsec_` secret that signs every request. */
  key: Uint8Array;
  log: Logger;
  observer?: DeliveryObserver;
  /** The wait before each retry; one attempt more than there are delays. */
  retryDelaysMs?: readonly number[];
  attemptTimeoutMs?: number;
  /** A delay as it is waited (default: ±25 %). */
  jitter?: (delayMs: number) => number;
  maxPending?: number;
  newId?: () => string;
};

type Delivery = { url: URL; id: string; message: WebhookMessage; body: string };
type Attempt = { delivered: true; status: number } | { delivered: false; retry: boolean; reason: string };

/**
 * Sends webhooks as the Standard Webhooks spec has them: POSTed JSON, signed (`webhook-id`,
 * `webhook-timestamp`, `webhook-signature`), retried with backoff on network errors, 5xx and 429,
 * each attempt cut off after 5 s, redirects never followed. `send` returns at once: deliveries
 * run on their own, so they never slow a turn or its stream. `close` gives the pending ones until
 * a deadline.
 */
export class WebhookDispatcher {
  private readonly pending = new Set<Promise<void>>();
  /** Aborted at the shutdown deadline: cuts off attempts and waits still going. */
  private readonly cutOff = new AbortController();
  /** Set by `close`: no retry is waited for past it. */
  private deadline: number | undefined;
  /** Ends the waits before retries early, at `close`. */
  private readonly wakers = new Set<() => void>();

  constructor(private readonly options: DispatcherOptions) {}

  /** Deliveries not finished yet: attempting, or waiting to retry. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Delivers `message` to each URL, in the background. Never throws. */
  send(urls: readonly string[], message: WebhookMessage): void {
    const id = `msg_${(this.options.newId ?? (() => crypto.randomUUID()))()}`;
    const body = JSON.stringify({ type: message.type, timestamp: new Date().toISOString(), data: message.data });
    for (const url of urls) {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        // Checked before it got here (flags, the route): a bug, not a reason to fail the run.
        this.options.log.error("webhook URL is not a URL", { event: message.type, run_id: message.runId });
        continue;
      }
      const delivery: Delivery = { url: target, id, message, body };
      if (this.cutOff.signal.aborted) {
        this.failed(delivery, 0, "the server has shut down");
        continue;
      }
      if (this.pending.size >= (this.options.maxPending ?? MAX_PENDING)) {
        this.failed(delivery, 0, `${this.pending.size} deliveries are already under way`);
        continue;
      }
      const task: Promise<void> = this.deliver(delivery).finally(() => this.pending.delete(task));
      this.pending.add(task);
    }
  }

  /**
   * At shutdown: each delivery waiting to retry tries once more at once, and then retries only
   * while its wait ends before `timeoutMs` has passed; whatever is still going then is cut off
   * (failed). Resolves once every delivery has ended.
   */
  async close(timeoutMs: number): Promise<void> {
    this.deadline ??= performance.now() + timeoutMs;
    for (const wake of [...this.wakers]) wake();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, this.deadline as number - performance.now()));
    });
    await Promise.race([Promise.allSettled([...this.pending]), expired]);
    clearTimeout(timer);
    this.cutOff.abort();
    await Promise.allSettled([...this.pending]);
  }

  private async deliver(delivery: Delivery): Promise<void> {
    const delays = this.options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    for (let attempt = 1; ; attempt++) {
      const result = await this.attempt(delivery);
      if (result.delivered) {
        this.options.observer?.webhookDelivered(delivery.message.type);
        this.options.log.debug("webhook delivered", { ...this.fields(delivery), attempt, status: result.status });
        return;
      }
      const delay = result.retry ? delays[attempt - 1] : undefined;
      if (delay === undefined) return this.failed(delivery, attempt, result.reason);
      const wait = (this.options.jitter ?? spread)(delay);
      if (this.deadline !== undefined && performance.now() + wait >= this.deadline) {
        return this.failed(delivery, attempt, `${result.reason}; the server is shutting down before the next attempt`);
      }
      this.options.observer?.webhookRetried(delivery.message.type);
      this.options.log.info("webhook attempt failed, retrying", { ...this.fields(delivery), attempt, error: result.reason, retry_in_ms: Math.round(wait) });
      await this.sleep(wait);
      if (this.cutOff.signal.aborted) return this.failed(delivery, attempt, `${result.reason}; the server shut down before the next attempt`);
    }
  }

  private async attempt(delivery: Delivery): Promise<Attempt> {
    const timeoutMs = this.options.attemptTimeoutMs ?? ATTEMPT_TIMEOUT_MS;
    const timestamp = Math.floor(Date.now() / 1000);
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const res = await fetch(delivery.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": `codex-http-server/${pkg.version}`,
          "webhook-id": delivery.id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": signWebhook(this.options.key, delivery.id, timestamp, delivery.body),
        },
        body: delivery.body,
        // A redirect could lead anywhere, past --webhook-allowed-hosts: it counts as a refusal.
        redirect: "manual",
        signal: AbortSignal.any([timeout, this.cutOff.signal]),
      });
      // The answer's body says nothing the dispatcher needs.
      await res.body?.cancel().catch(() => {});
      if (res.status >= 200 && res.status < 300) return { delivered: true, status: res.status };
      const redirect = res.status >= 300 && res.status < 400 ? " (redirects are not followed)" : "";
      return { delivered: false, retry: res.status >= 500 || res.status === 429, reason: `answered ${res.status}${redirect}` };
    } catch (err) {
      if (this.cutOff.signal.aborted) return { delivered: false, retry: false, reason: "cut off at the shutdown deadline" };
      const reason = timeout.aborted ? `no answer within ${timeoutMs / 1000} s` : `could not deliver: ${(err as Error).message}`;
      return { delivered: false, retry: true, reason };
    }
  }

  /** Waits `ms`, or less: until `close` (one more attempt at once) or the shutdown deadline. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        this.cutOff.signal.removeEventListener("abort", done);
        resolve();
      };
      // A wait before a retry must not keep the process alive on its own.
      const timer = setTimeout(done, ms).unref();
      this.wakers.add(done);
      this.cutOff.signal.addEventListener("abort", done, { once: true });
    });
  }

  private failed(delivery: Delivery, attempts: number, reason: string): void {
    this.options.observer?.webhookFailed(delivery.message.type);
    this.options.log.warn("webhook not delivered", { ...this.fields(delivery), attempts, error: reason });
  }

  /** What a log line says of a delivery: the run, the message and the receiving host, never the URL's path or query, nor the secret. */
  private fields(delivery: Delivery) {
    return { event: delivery.message.type, run_id: delivery.message.runId, webhook_id: delivery.id, host: delivery.url.host };
  }
}
