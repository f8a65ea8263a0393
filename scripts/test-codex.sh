#!/usr/bin/env bash
# Runs the tests that drive codex end to end (both engines, against the scripted model) with the
# codex binary given, instead of the one @openai/codex-sdk installed: to check a codex release
# before deploying it. Usage: scripts/test-codex.sh /path/to/codex
set -euo pipefail
codex="${1:?usage: scripts/test-codex.sh /path/to/codex}"
[ -x "$codex" ] || { echo "not an executable: $codex" >&2; exit 2; }
cd "$(dirname "$0")/.."
echo "--- $("$codex" --version)"
CODEX_PATH="$(realpath "$codex")" exec bun test \
  test/e2e.test.ts test/runs-e2e.test.ts test/engine-parity.test.ts test/turn-processes.test.ts \
  test/threads-e2e.test.ts test/queue-e2e.test.ts test/app-server.test.ts
