import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AppEnv } from "../app-types";
import { ApiError } from "../errors";
import { exceedsJsonDepth } from "../json-depth";

/* What every route that takes a JSON body checks first (POST /messages, the thread routes), in the API's error shape. */

/** Refuses a body larger than `maxBytes` with 413 in our shape (Bun's own limit answers an empty 413). */
export function limitBody(maxBytes: number): MiddlewareHandler<AppEnv> {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ApiError(413, "payload_too_large", `The request body is larger than ${maxBytes} bytes.`);
    },
  });
}

const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** How deep a request body may nest arrays and objects; a real request needs a handful of levels, an output_schema a dozen or two. */
const MAX_JSON_DEPTH = 64;

/**
 * zod-validator would read a non-JSON body as `{}` and throw its own error on malformed JSON, so
 * both are refused here first, in our error shape; so is a body nested too deep for recursive
 * code to walk, before anything parses it. The text is cached for the validator.
 */
export const requireJsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  const contentType = c.req.header("content-type") ?? "";
  if (!JSON_CONTENT_TYPE.test(contentType)) {
    throw new ApiError(415, "unsupported_media_type", "Send the body as JSON with content-type: application/json.");
  }
  const text = await c.req.text();
  if (exceedsJsonDepth(text, MAX_JSON_DEPTH)) {
    throw new ApiError(422, "invalid_request", `body: must not nest arrays and objects more than ${MAX_JSON_DEPTH} deep`);
  }
  try {
    JSON.parse(text);
  } catch {
    throw new ApiError(400, "invalid_json", "The request body is not valid JSON.");
  }
  await next();
};
