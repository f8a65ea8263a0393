import { statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { z } from "zod";

export const MESSAGE_TYPES = ["user_message", "user_confirm", "user_cancel", "user_edit"] as const;

/** Request ids travel into headers and log lines, so they are kept to a safe alphabet. */
export const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const requestIdSchema = z.string().regex(REQUEST_ID, "must be 1 to 128 letters, digits, '.', '_', ':' or '-'");

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export const workDirSchema = z.string().superRefine((path, ctx) => {
  if (!isAbsolute(path)) ctx.addIssue({ code: "custom", message: "must be an absolute path" });
  else if (!isDirectory(path)) ctx.addIssue({ code: "custom", message: "must be an existing directory" });
});

export const userMessageSchema = z.strictObject({
  type: z.literal("user_message"),
  message: z.string().refine((text) => text.trim().length > 0, "must not be empty"),
  work_dir: workDirSchema.optional(),
  id: requestIdSchema.optional(),
});

export const userCancelSchema = z.strictObject({
  type: z.literal("user_cancel"),
  id: requestIdSchema,
  message: z.string().optional(),
});

/** Types the protocol names but this server does not serve yet: recognised, then refused. */
const unsupportedMessageSchema = z.looseObject({
  type: z.enum(["user_confirm", "user_edit"]),
});

export const messageRequestSchema = z.discriminatedUnion("type", [userMessageSchema, userCancelSchema, unsupportedMessageSchema]);
export type MessageRequest = z.infer<typeof messageRequestSchema>;

/** `work_dir: must be an absolute path; message: ...`: every problem, each named by its field. */
export function describeIssues(error: z.core.$ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length > 0 ? issue.path.join(".") : "body";
      if (issue.code === "unrecognized_keys") return `${issue.keys.join(", ")}: unknown field`;
      if (issue.code === "invalid_type" && issue.path.length === 0) return "body: must be a JSON object";
      if (issue.code === "invalid_union" && field === "type") return `type: must be one of ${MESSAGE_TYPES.join(", ")}`;
      return `${field}: ${issue.message}`;
    })
    .join("; ");
}
