import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Usage } from "./schemas";
import type { StoreObserver } from "./store/redis-store";
import type { DeliveryObserver } from "./webhooks/dispatcher";

/** What a run reports about itself; the runs layer knows this interface, not Prometheus. */
export type RunObserver = {
  started(): void;
  firstEvent(seconds: number): void;
  /** `tenant`: whose turn it was (undefined: nobody's, counted as "default"); `usage`: its done.usage. */
  finished(status: string, seconds: number, turn?: { tenant: string | undefined; usage: Usage | null }): void;
};

export type Metrics = RunObserver & DeliveryObserver & StoreObserver & {
  registry: Registry;
  httpRequest(method: string, path: string, status: number): void;
  /**
   * The counter of one method, route and status, looked up once: for a path that counts the same
   * request over and over (/health's fast path) without building its key every time.
   */
  requestCounter(method: string, path: string, status: number): () => void;
  sseEventsSent(count: number): void;
};

/** Paths as route patterns, so that run ids do not become label values. */
export function routeLabel(path: string): string {
  if (["/health", "/ready", "/messages", "/runs", "/openapi.json", "/metrics"].includes(path)) return path;
  if (/^\/runs\/[^/]+$/.test(path)) return "/runs/{id}";
  if (/^\/runs\/[^/]+\/events$/.test(path)) return "/runs/{id}/events";
  return "other";
}

const TURN_SECONDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

type MetricGauges = {
  activeTurns: () => number;
  queuedTurns: () => number;
  activeCodexProcesses: () => number;
  retainedRuns: () => number;
  retainedRunBytes: () => number;
  pendingWebhookDeliveries: () => number;
  /** Only with replicas (the store's metrics are there only then): how far behind the oldest event not yet written to the shared store is, in seconds. */
  storeStreamLagSeconds?: () => number;
};

export function createMetrics(gauges: MetricGauges): Metrics {
  const registry = new Registry();
  const registers = [registry];
  // Requests are counted in plain numbers, handed to prom-client when scraped: its `inc` hashes
  // the labels on every call, which each request, /health's fast path included, would pay for.
  const requestCounts = new Map<string, { labels: { method: string; route: string; status: string }; count: number }>();
  /** The count of one method, route and status; undefined past 1,000 of them (methods are the client's to choose), which go straight to prom-client. */
  const requestEntry = (method: string, path: string, status: number) => {
    const route = routeLabel(path);
    const key = `${method} ${route} ${status}`;
    let entry = requestCounts.get(key);
    if (!entry && requestCounts.size < 1_000) requestCounts.set(key, (entry = { labels: { method, route, status: String(status) }, count: 0 }));
    return entry;
  };
  const http = new Counter({
    name: "codex_http_requests_total",
    help: "HTTP requests by route and status",
    labelNames: ["method", "route", "status"],
    registers,
    collect() {
      for (const entry of requestCounts.values()) {
        if (entry.count === 0) continue;
        this.inc(entry.labels, entry.count);
        entry.count = 0;
      }
    },
  });
  const started = new Counter({ name: "codex_turns_started_total", help: "Turns started", registers });
  const finished = new Counter({ name: "codex_turns_finished_total", help: "Turns finished, by done status", labelNames: ["status"], registers });
  const tenantTurns = new Counter({ name: "codex_tenant_turns_total", help: "Turns finished, by tenant and done status", labelNames: ["tenant", "status"], registers });
  const tenantTokens = new Counter({
    name: "codex_tenant_tokens_total",
    help: "Tokens of finished turns (done.usage), by tenant and kind: input, cached_input, output, reasoning_output",
    labelNames: ["tenant", "kind"],
    registers,
  });
  const sse = new Counter({ name: "codex_sse_events_sent_total", help: "SSE event frames written to clients", registers });
  const duration = new Histogram({ name: "codex_turn_duration_seconds", help: "Turn duration, start to done", buckets: TURN_SECONDS, registers });
  const firstEvent = new Histogram({ name: "codex_turn_first_event_seconds", help: "Time from a turn's start to codex's first event", buckets: TURN_SECONDS, registers });
  new Gauge({ name: "codex_turns_active", help: "Turns running now", registers, collect() { this.set(gauges.activeTurns()); } });
  new Gauge({ name: "codex_turns_queued", help: "Turns waiting for their thread (on_busy enqueue)", registers, collect() { this.set(gauges.queuedTurns()); } });
  new Gauge({ name: "codex_processes_active", help: "codex processes running now", registers, collect() { this.set(gauges.activeCodexProcesses()); } });
  new Gauge({ name: "codex_retained_runs", help: "Finished runs kept for listing and replay", registers, collect() { this.set(gauges.retainedRuns()); } });
  new Gauge({ name: "codex_retained_run_bytes", help: "Bytes of event data that the finished runs kept hold", registers, collect() { this.set(gauges.retainedRunBytes()); } });
  const deliveries = new Counter({ name: "codex_webhook_deliveries_total", help: "Webhook deliveries ended, by event and result (delivered, failed)", labelNames: ["event", "result"], registers });
  const retries = new Counter({ name: "codex_webhook_retries_total", help: "Webhook attempts that failed and are retried, by event", labelNames: ["event"], registers });
  new Gauge({ name: "codex_webhook_deliveries_pending", help: "Webhook deliveries under way: attempting, or waiting to retry", registers, collect() { this.set(gauges.pendingWebhookDeliveries()); } });
  const storeRegisters = gauges.storeStreamLagSeconds ? registers : [];
  const storeErrors = new Counter({ name: "codex_store_errors_total", help: "Shared store (Redis) commands that failed, by operation", labelNames: ["operation"], registers: storeRegisters });
  const storeUp = new Gauge({ name: "codex_store_up", help: "1 while the shared store (Redis) answers, 0 while it does not", registers: storeRegisters });
  const lag = gauges.storeStreamLagSeconds;
  if (lag) new Gauge({ name: "codex_store_stream_lag_seconds", help: "Age of the oldest run event not yet written to the shared store", registers, collect() { this.set(lag()); } });
  return {
    registry,
    storeError: (operation) => storeErrors.inc({ operation }),
    storeState: (state) => storeUp.set(state === "up" ? 1 : 0),
    httpRequest: (method, path, status) => {
      const entry = requestEntry(method, path, status);
      if (entry) entry.count++;
      else http.inc({ method, route: routeLabel(path), status: String(status) });
    },
    requestCounter: (method, path, status) => {
      const entry = requestEntry(method, path, status);
      if (!entry) return () => http.inc({ method, route: routeLabel(path), status: String(status) });
      return () => {
        entry.count++;
      };
    },
    sseEventsSent: (count) => sse.inc(count),
    started: () => started.inc(),
    firstEvent: (seconds) => firstEvent.observe(seconds),
    finished: (status, seconds, turn) => {
      finished.inc({ status });
      duration.observe(seconds);
      // Without a tokens file every turn is the implicit tenant's: "default".
      const tenant = turn?.tenant ?? "default";
      tenantTurns.inc({ tenant, status });
      const usage = turn?.usage;
      if (usage) {
        tenantTokens.inc({ tenant, kind: "input" }, usage.input_tokens);
        tenantTokens.inc({ tenant, kind: "cached_input" }, usage.cached_input_tokens);
        tenantTokens.inc({ tenant, kind: "output" }, usage.output_tokens);
        tenantTokens.inc({ tenant, kind: "reasoning_output" }, usage.reasoning_output_tokens);
      }
    },
    webhookDelivered: (event) => deliveries.inc({ event, result: "delivered" }),
    webhookRetried: (event) => retries.inc({ event }),
    webhookFailed: (event) => deliveries.inc({ event, result: "failed" }),
  };
}
