import { readFileSync } from "node:fs";
import { join } from "node:path";

type ConsoleAsset = { path: string; contentType: string; body: string };

const SCRIPTS = ["console", "markdown", "sse", "threads"];

/**
 * The console's files, served as they are but for the TypeScript, which only loses its types.
 * It runs as a Bun macro (imported `with { type: "macro" }`): `bun build --compile` reads the files
 * into the executable, and `bun run` reads them when it transpiles the importing module. So there
 * is no build step, and the single-file executable needs nothing beside it.
 */
export function consoleAssets(): ConsoleAsset[] {
  const read = (name: string) => readFileSync(join(import.meta.dir, name), "utf8");
  const transpiler = new Bun.Transpiler({ loader: "ts", target: "browser" });
  return [
    { path: "/", contentType: "text/html; charset=utf-8", body: read("index.html") },
    { path: "/console/console.css", contentType: "text/css; charset=utf-8", body: read("console.css") },
    ...SCRIPTS.map((name) => ({
      path: `/console/${name}.js`,
      contentType: "text/javascript; charset=utf-8",
      body: transpiler.transformSync(read(`${name}.ts`)),
    })),
  ];
}
