/** A second baseline for the /health benchmark: Hono with one route and no middleware. */
import { Hono } from "hono";

const app = new Hono().get("/health", (c) => c.json({ status: "ok" }));
const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
console.log(`Server listening on: http://127.0.0.1:${server.port}`);
