import { realpathSync, statSync } from "node:fs";
import { isAbsolute, relative, sep } from "node:path";

/**
 * Whether `path` is `root` or lies below it; both must already be real paths. Compared by
 * segment: `..foo` is a name inside the root, only `..` itself leads out.
 */
export function isInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/**
 * The directory a turn runs in. Under a workspace root it is resolved (symlinks followed, `..`
 * gone) and must stay inside; undefined means it does not.
 */
export function resolveWorkDir(
  requested: string | undefined,
  policy: { defaultWorkDir: string; workspaceRoot: string | undefined },
): string | undefined {
  const path = requested ?? policy.defaultWorkDir;
  if (policy.workspaceRoot === undefined) return path;
  const real = realpathSync(path);
  return isInside(real, policy.workspaceRoot) ? real : undefined;
}

/** An image a turn may send: an existing file whose real path lies inside `root`. */
export function resolveImage(path: string, root: string): string | undefined {
  try {
    const real = realpathSync(path);
    return statSync(real).isFile() && isInside(real, realpathSync(root)) ? real : undefined;
  } catch {
    return undefined;
  }
}
