import { expect, test } from "bun:test";
import { isInside } from "../src/work-dir";

test.each([
  ["/srv/ws", "/srv/ws", true],
  ["/srv/ws/project", "/srv/ws", true],
  ["/srv/ws/a/b/c", "/srv/ws", true],
  ["/srv/ws/..foo", "/srv/ws", true],
  ["/srv/ws/...", "/srv/ws", true],
  ["/srv/ws/..foo/bar", "/srv/ws", true],
  ["/srv/ws/a/..b", "/srv/ws", true],
  ["/srv", "/srv/ws", false],
  ["/", "/srv/ws", false],
  ["/srv/other", "/srv/ws", false],
  ["/srv/ws-other", "/srv/ws", false],
  ["/srv/..foo", "/srv/ws", false],
  ["/anything", "/", true],
  ["/", "/", true],
])("isInside(%p, %p) is %p", (path, root, inside) => {
  expect(isInside(path, root)).toBe(inside);
});
