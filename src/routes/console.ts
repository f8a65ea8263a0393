import type { Hono } from "hono";
import type { AppEnv } from "../app-types";
import { consoleAssets } from "../console/assets" with { type: "macro" };
import { methodNotAllowed } from "./method-not-allowed";

/**
 * The page may only load its own files and talk to its own origin: agent output is rendered as
 * text, and even if that failed, no injected script could run or send anything elsewhere.
 */
const PAGE_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

/** GET / and its files, public like /health: the page holds no secret, the API behind it does. */
export function consoleRoutes(app: Hono<AppEnv>): void {
  for (const asset of consoleAssets()) {
    const etag = `"${Bun.hash(asset.body).toString(36)}"`;
    app
      .get(asset.path, (c) => {
        if (c.req.header("if-none-match") === etag) return c.body(null, 304, { etag, ...PAGE_HEADERS });
        return c.body(asset.body, 200, { "content-type": asset.contentType, etag, ...PAGE_HEADERS });
      })
      .all(asset.path, methodNotAllowed("GET", "HEAD"));
  }
}
