/** The baseline for the /health benchmark: Bun.serve answering the same JSON, nothing else. */
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: () => Response.json({ status: "ok" }),
});
console.log(`Server listening on: http://127.0.0.1:${server.port}`);
