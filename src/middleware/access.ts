import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "../app";
import { ApiError } from "../errors";

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (bare === "localhost" || bare.endsWith(".localhost")) return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  return bare === "::1";
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

export type AccessPolicy = { loopbackOnly: boolean; allowedOrigins: ReadonlySet<string> };

/**
 * Returns what tells why a request from a browser must be refused, if it must. A page on another
 * site may make a browser send requests here (cross-site POST), and through DNS rebinding even
 * read the answers:
 * - bound to loopback only, a Host header naming anything but loopback is such a rebinding;
 * - an Origin passes when it is the server's own (it names the Host the request went to) or listed.
 * It runs on every request, /health included, so Host values already accepted are remembered.
 */
export function browserGuard(policy: AccessPolicy): (c: Context) => ApiError | undefined {
  const acceptedHosts = new Set<string>();
  return (c) => {
    const host = c.req.header("host");
    if (policy.loopbackOnly && host !== undefined && !acceptedHosts.has(host)) {
      if (!isLoopbackHost(hostOfHostHeader(host))) {
        return new ApiError(403, "forbidden_host", "This server only answers requests addressed to localhost.");
      }
      if (acceptedHosts.size < 64) acceptedHosts.add(host);
    }
    const origin = c.req.header("origin");
    if (origin === undefined || policy.allowedOrigins.has(origin)) return undefined;
    let sameOrigin = false;
    try {
      sameOrigin = host !== undefined && new URL(origin).host === host.toLowerCase();
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

export function requireBearerToken(token: string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const given = /^Bearer +(\S+)\s*$/i.exec(header)?.[1];
    if (given === undefined || !tokenMatches(given, token)) {
      throw new ApiError(
        401,
        "unauthorized",
        given === undefined ? "Send Authorization: Bearer <token>." : "The bearer token is not valid.",
        { "www-authenticate": 'Bearer realm="codex-http-server"' },
      );
    }
    await next();
  };
}
