import type { RunNotifier } from "../runs/run";
import type { ApprovalRequestedWebhook, RunDoneWebhook } from "../schemas";
import type { WebhookDispatcher } from "./dispatcher";

/**
 * What runs tell their webhooks: `run.done` for every run however it ended, `approval.requested`
 * whenever codex asks. Each goes to the server's `--webhook-url` and to the run's own
 * `webhook_url`, when there are; to neither, nowhere.
 */
export function runWebhooks(dispatcher: WebhookDispatcher, serverUrl: string | undefined): RunNotifier {
  const urlsOf = (runUrl: string | undefined) => [...new Set([serverUrl, runUrl])].filter((url): url is string => url !== undefined);
  return {
    runDone(run, done, finishedAt) {
      const urls = urlsOf(run.turn.webhookUrl);
      if (urls.length === 0) return;
      const data: RunDoneWebhook["data"] = { id: run.id, ...done, started_at: run.summary().started_at, finished_at: finishedAt.toISOString() };
      dispatcher.send(urls, { type: "run.done", runId: run.id, data });
    },
    approvalRequested(run, { type: _, ...request }) {
      const urls = urlsOf(run.turn.webhookUrl);
      if (urls.length === 0) return;
      const data: ApprovalRequestedWebhook["data"] = { run_id: run.id, thread_id: run.threadId, ...request };
      dispatcher.send(urls, { type: "approval.requested", runId: run.id, data });
    },
  };
}
