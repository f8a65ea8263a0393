/** deploy/: the Compose file of docs/replicas.md parses, and says what the page says of it. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8");

type Service = { environment?: Record<string, string>; volumes?: string[]; build?: string; image?: string };

test("deploy/compose.yaml: two replicas, each its own id and CODEX_HOME, one Redis, nginx in front without stickiness", () => {
  const compose = Bun.YAML.parse(read("deploy/compose.yaml")) as { services: Record<string, Service>; volumes: Record<string, unknown> };
  const replicas = Object.entries(compose.services).filter(([, service]) => service.environment?.REDIS_URL !== undefined);
  expect(replicas.map(([name]) => name)).toEqual(["codex-1", "codex-2"]);
  for (const [name, service] of replicas) {
    expect(service.build).toBe("..");
    expect(service.environment).toMatchObject({ REDIS_URL: "redis://redis:6379", CODEX_SERVER_REPLICA_ID: name });
    const home = service.volumes?.find((volume) => volume.endsWith(":/home/codex/.codex"));
    expect(home).toBe(`codex-home-${name.slice(-1)}:/home/codex/.codex`);
    expect(Object.keys(compose.volumes)).toContain(home?.split(":")[0] as string);
  }
  expect(compose.services.redis?.image).toStartWith("redis:");
  const nginx = read("deploy/nginx.conf");
  expect([...nginx.matchAll(/^\s*server (\S+):8081;/gm)].map((match) => match[1])).toEqual(["codex-1", "codex-2"]);
  expect(nginx).not.toMatch(/\b(ip_hash|sticky|hash)\b/);
  expect(nginx).toContain("proxy_buffering off;");
  expect(compose.services.nginx?.volumes).toEqual(["./nginx.conf:/etc/nginx/conf.d/default.conf:ro"]);
});
