import { createHmac } from "node:crypto";

/** Standard Webhooks secrets: `whsec_` and the base64 of the key's bytes. */
const SECRET_PREFIX = "whsec_";
/** The spec asks for 24 to 64 bytes; fewer would be guessable, more HMAC-SHA256 hashes anyway. */
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;

export const SECRET_EXAMPLE = 'echo "whsec_$(openssl rand -base64 32)"';

/**
 * The key of a `whsec_<base64>` secret, as the Standard Webhooks spec defines it; throws with a
 * message that never repeats the secret.
 */
export function parseWebhookSecret(secret: string): Uint8Array {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error(`must start with ${SECRET_PREFIX}, e.g. from \`${SECRET_EXAMPLE}\``);
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
    throw new Error(`must be ${SECRET_PREFIX} followed by base64, e.g. from \`${SECRET_EXAMPLE}\``);
  }
  const key = Buffer.from(encoded, "base64");
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    throw new Error(`must hold ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes of key, not ${key.length}, e.g. from \`${SECRET_EXAMPLE}\``);
  }
  return new Uint8Array(key);
}

/**
 * The `webhook-signature` header: `v1,` and the base64 HMAC-SHA256, keyed with the secret's bytes,
 * of `<webhook-id>.<webhook-timestamp>.<body>`.
 */
export function signWebhook(key: Uint8Array, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}
