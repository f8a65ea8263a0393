import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "../app-types";
import { ApiError } from "../errors";
import { IMPLICIT_TENANT } from "../tenants/tenant";
import type { Tenants } from "../tenants/tenants";

/** `[::1]` → `::1`, in lower case: a host as the checks compare it. */
export function bareHost(host: string): string {
  return host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
}

/** Browsers resolve `localhost` and every name under it to loopback themselves (no DNS asked). */
function isLocalhostName(name: string): boolean {
  return name === "localhost" || name.endsWith(".localhost");
}

export function isLoopbackHost(host: string): boolean {
  const bare = bareHost(host);
  if (isLocalhostName(bare)) return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  return bare === "::1";
}

/**
 * Whether `--allowed-hosts` lists `host` (lower case), read as Vite reads `server.allowedHosts`:
 * `codex.example.com` is that name only; `.example.com` is example.com and every name under it.
 */
export function hostIsListed(host: string, allowedHosts: readonly string[]): boolean {
  return allowedHosts.some((entry) =>
    entry.startsWith(".") ? host === entry.slice(1) || host.endsWith(entry) : host === entry,
  );
}

/**
 * Whether a browser may address this server as `host` (a Host header's host part). A page that
 * rebinds its own name (attacker.example) to this server's address makes the browser send
 * `Host: attacker.example`: only names no stranger can point here are safe. An IP address
 * names no DNS record, `localhost` is resolved by the browser itself, and a listed name is one
 * the operator controls.
 */
export function isBrowserHost(host: string, allowedHosts: readonly string[]): boolean {
  const bare = bareHost(host);
  return isIP(bare) !== 0 || isLocalhostName(bare) || hostIsListed(bare, allowedHosts);
}

/** The host part of a Host header (`example.com:8081`, `[::1]:80`, `localhost`). */
export function hostOfHostHeader(header: string): string {
  const match = /^(\[[^\]]*\]|[^:]*)(?::\d*)?$/.exec(header.trim());
  return match?.[1] ?? header;
}

/** Compares digests so that neither the token's content nor its length leaks through timing. */
export function tokenMatches(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

export type AccessPolicy = {
  loopbackOnly: boolean;
  /** `--allowed-hosts`: names, and `.domain` for a domain and every name under it. */
  allowedHosts: readonly string[];
  allowedOrigins: ReadonlySet<string>;
};

export function accessPolicy(config: { host: string; allowedHosts: readonly string[]; allowedOrigins: readonly string[] }): AccessPolicy {
  return {
    loopbackOnly: isLoopbackHost(config.host),
    allowedHosts: config.allowedHosts,
    allowedOrigins: new Set(config.allowedOrigins),
  };
}

/**
 * Whether a request says it comes from a browser. Origin is the sure mark, but a same-origin GET
 * has none, and from a plain-http page chromium sends no Sec-Fetch-* either: then only the
 * User-Agent tells, which every browser starts with "Mozilla/" and chromium and Safari do not let
 * a page change. Without this, a rebinding page could read GET /runs and the turns' events.
 */
function carriesBrowserMarks(headers: Headers): boolean {
  return (
    headers.has("sec-fetch-site") ||
    headers.has("sec-fetch-mode") ||
    headers.get("user-agent")?.startsWith("Mozilla/") === true
  );
}

/** Which requests a Host header lets through: all of them, only those no browser sent, or none. */
type HostVerdict = "all" | "not_browsers" | "none";

const SLASH = 47;
const MISSING_HOST = new ApiError(400, "missing_host", "Send a Host header: this server needs it to tell whom a request is for.");
const LOOPBACK_ONLY = new ApiError(
  403,
  "forbidden_host",
  "This server only answers requests addressed to localhost or to a name that --allowed-hosts lists.",
);

/**
 * Returns what tells why a request must be refused, if it must, before any route sees it:
 * - no Host header: Bun builds a request's URL from it, and without one (HTTP/1.0 allows that) the
 *   URL is the bare path, which Hono would route as another path ("/health" as "h");
 * - a page on another site may make a browser send requests here (cross-site POST), and through
 *   DNS rebinding, under its own name, even read the answers. So a request that carries a
 *   browser's marks (Origin, Sec-Fetch-*, a browser's User-Agent) must name this server by a host no
 *   stranger can point here (see isBrowserHost); clients without them (curl, SDKs, a proxy that
 *   sets Host) may use any name;
 * - bound to loopback only, a Host header naming anything but loopback or a listed name is refused
 *   whoever sends it;
 * - an Origin passes when it is the server's own (it names the Host the request went to) or listed.
 * It runs on every request, /health included, so each Host header's verdict is remembered.
 */
export function requestGuard(policy: AccessPolicy): (request: Request) => ApiError | undefined {
  const verdicts = new Map<string, HostVerdict>();
  const verdictOf = (header: string): HostVerdict => {
    let verdict = verdicts.get(header);
    if (verdict === undefined) {
      const host = hostOfHostHeader(header);
      if (policy.loopbackOnly && !isLoopbackHost(host) && !hostIsListed(bareHost(host), policy.allowedHosts)) verdict = "none";
      else verdict = isBrowserHost(host, policy.allowedHosts) ? "all" : "not_browsers";
      if (verdicts.size < 64) verdicts.set(header, verdict);
    }
    return verdict;
  };
  return (request) => {
    const { headers } = request;
    let host = headers.get("host");
    if (!host) {
      if (request.url.charCodeAt(0) === SLASH) return MISSING_HOST;
      // Only a Request built by hand (app.request) has a whole URL and no Host: the URL names it.
      host = new URL(request.url).host;
    }
    const verdict = verdictOf(host);
    if (verdict === "none") return LOOPBACK_ONLY;
    const origin = headers.get("origin");
    if (verdict === "not_browsers" && (origin !== null || carriesBrowserMarks(headers))) {
      return new ApiError(
        403,
        "forbidden_host",
        `A browser may reach this server only by IP address, localhost or a name that --allowed-hosts lists, not as ${hostOfHostHeader(host)}.`,
      );
    }
    if (origin === null || policy.allowedOrigins.has(origin)) return undefined;
    let sameOrigin = false;
    try {
      sameOrigin = new URL(origin).host === host.toLowerCase();
    } catch {}
    return sameOrigin
      ? undefined
      : new ApiError(403, "forbidden_origin", `Requests from ${origin} are not allowed; see --allowed-origins.`);
  };
}

/** CORS headers, preflight included, for the origins `--allowed-origins` lists. */
export function corsForAllowedOrigins(allowed: ReadonlySet<string>): MiddlewareHandler<AppEnv> {
  return cors({
    origin: (origin) => (allowed.has(origin) ? origin : null),
    allowMethods: ["GET", "HEAD", "POST", "DELETE"],
    allowHeaders: ["authorization", "content-type", "last-event-id", "x-request-id"],
    exposeHeaders: ["x-request-id", "retry-after"],
    maxAge: 600,
  });
}

/**
 * What an Authorization header can carry as a bearer token, and so what a token may hold:
 * visible ASCII, no space (RFC 6750's b64token is a subset). Header values are bytes; anything
 * else could never arrive as configured.
 */
const TOKEN_CHARACTERS = "[\\x21-\\x7e]+";
export const BEARER_TOKEN = new RegExp(`^${TOKEN_CHARACTERS}$`);
const BEARER_HEADER = new RegExp(`^Bearer +(${TOKEN_CHARACTERS}) *$`, "i");

/**
 * Names the request's tenant (`c.var.tenant`) by its bearer token, or refuses it with 401. Without
 * any token configured every request is the implicit tenant's, as before tenants.
 */
export function authenticate(tenants: Tenants): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (tenants.open) {
      c.set("tenant", IMPLICIT_TENANT);
      return next();
    }
    const header = c.req.header("authorization") ?? "";
    const given = BEARER_HEADER.exec(header)?.[1];
    const tenant = given === undefined ? undefined : tenants.authenticate(given);
    if (tenant === undefined) {
      throw new ApiError(
        401,
        "unauthorized",
        given === undefined ? "Send Authorization: Bearer <token>." : "The bearer token is not valid.",
        { "www-authenticate": 'Bearer realm="codex-http-server"' },
      );
    }
    c.set("tenant", tenant);
    await next();
  };
}
