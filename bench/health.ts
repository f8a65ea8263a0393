/** /health requests per second through the server vs a bare Bun.serve, same client (wrk), interleaved rounds. */
import { cpuSeconds, median, round, startServerProcess, table } from "./lib";

async function wrk(url: string, seconds: number): Promise<number> {
  const run = Bun.spawn(["wrk", "-t2", "-c64", `-d${seconds}s`, `${url}/health`], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(run.stdout).text();
  await run.exited;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  if (!Number.isFinite(rps)) throw new Error(`wrk printed no rate:\n${out}`);
  return rps;
}

export async function healthThroughput({ rounds, seconds }: { rounds: number; seconds: number }): Promise<string> {
  if (!Bun.which("wrk")) return "/health throughput: skipped, `wrk` is not installed (`apt-get install wrk`).";
  const env = process.env as Record<string, string>;
  const servers = {
    bare: await startServerProcess(["bun", "bench/bare-health.ts"], env),
    hono: await startServerProcess(["bun", "bench/hono-health.ts"], env),
    server: await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0"], { ...env, RUST_LOG: "info" }),
    quiet: await startServerProcess(["bun", "src/cli.ts", "-a", "127.0.0.1:0"], { ...env, RUST_LOG: "warn" }),
  };
  const rates: Record<keyof typeof servers, number[]> = { bare: [], hono: [], server: [], quiet: [] };
  const cpu: Record<keyof typeof servers, number[]> = { bare: [], hono: [], server: [], quiet: [] };
  try {
    for (const [, s] of Object.entries(servers)) await wrk(s.url, 1);
    for (let i = 0; i < rounds; i++) {
      for (const [name, s] of Object.entries(servers) as Array<[keyof typeof servers, (typeof servers)["bare"]]>) {
        const cpuBefore = cpuSeconds(s.pid);
        const rate = await wrk(s.url, seconds);
        rates[name].push(rate);
        cpu[name].push(((cpuSeconds(s.pid) - cpuBefore) * 1e6) / (rate * seconds));
      }
    }
  } finally {
    for (const s of Object.values(servers)) await s.stop();
  }
  const bare = median(rates.bare);
  const row = (name: keyof typeof servers, label: string) => [
    label,
    Math.round(median(rates[name])),
    round(median(rates[name]) / bare, 3),
    round(median(cpu[name]), 2),
  ];
  return [
    `/health throughput: wrk -t2 -c64, ${rounds} interleaved rounds of ${seconds} s, medians.`,
    "",
    table(
      ["server", "requests/s", "ratio to bare", "server CPU per request (µs)"],
      [
        row("bare", "bare Bun.serve, same JSON"),
        row("hono", "Hono, one route, no middleware"),
        row("server", "codex-http-server (RUST_LOG=info: one log line per request)"),
        row("quiet", "codex-http-server (RUST_LOG=warn)"),
      ],
    ),
  ].join("\n");
}
