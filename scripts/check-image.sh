#!/usr/bin/env bash
# Runs the built image with podman and checks it end to end, offline, against the test suite's
# scripted model: /health, the HEALTHCHECK command, a `say hello` turn, a `run ls /` turn (codex
# runs bash in the image), the web console, the user the server runs as, and that SIGTERM makes
# it exit 0. Then a second container with codex's sandbox on (bypass off, workspace-write) on
# another address: its HEALTHCHECK still passes, and a write inside /workspace works while one
# outside it is refused.
#
# The containers share the host's network (--network host), so that codex inside them reaches
# the scripted model on the host's 127.0.0.1. The first runs with the image's default command
# (--addr 0.0.0.0:8081) and a random bearer token, the second with --addr 127.0.0.1:8082, so
# ports 8081 and 8082 must be free on the host.
#
# Needs root, podman, runc, bun (for the scripted model), curl and jq.
# Usage: sudo scripts/check-image.sh [IMAGE]      (default localhost/codex-http-server:latest)
# Environment:
#   PODMAN_RUN_FLAGS  extra `podman run` flags. The default suits hosts with a hybrid cgroup
#                     v1/v2 layout, which crun refuses ("cgroups in hybrid mode not supported"):
#                     runc (Debian's `runc` package) with cgroupfs; and rlimits within the host's
#                     hard limits, which podman's defaults (nofile 1048576) may exceed. Set it to
#                     "" on a host where podman runs with its defaults.
set -euo pipefail

cd "$(dirname "$0")/.."
image="${1:-localhost/codex-http-server:latest}"
default_flags="--runtime runc --cgroup-manager cgroupfs --ulimit nofile=$(ulimit -Hn):$(ulimit -Hn) --ulimit nproc=4096:4096"
read -r -a flags <<<"${PODMAN_RUN_FLAGS-$default_flags}"
name="codex-http-server-check-$$"
volume="$name-home"
token="check-$$-$RANDOM"
url=http://127.0.0.1:8081
work="$(mktemp -d)"
mock_pid=""
failed=0

cleanup() {
  podman rm -f "$name" "$name-sandbox" >/dev/null 2>&1 || true
  podman volume rm -f "$volume" >/dev/null 2>&1 || true
  if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }
check() {   # check DESCRIPTION COMMAND...: runs the command, prints ok/FAILED
  local description="$1"
  shift
  if "$@"; then echo "ok: $description"; else echo "FAILED: $description"; failed=1; fi
}

sandbox_url=http://127.0.0.1:8082
for address in "$url" "$sandbox_url"; do
  if curl -s -o /dev/null "$address/health"; then
    echo "something already listens on $address; stop it first" >&2
    exit 1
  fi
done

step "the scripted model"
bun test/fixtures/mock-model.ts >"$work/mock.out" 2>&1 &
mock_pid=$!
for _ in $(seq 50); do grep -q '^export CODEX_HOME=' "$work/mock.out" && break; sleep 0.1; done
cat "$work/mock.out"
mock_home="$(sed -n 's/^export CODEX_HOME=\([^ ]*\) .*/\1/p' "$work/mock.out")"
mock_key="$(sed -n 's/.*MOCK_API_KEY=\([^ ]*\).*/\1/p' "$work/mock.out")"

step "a new CODEX_HOME volume, owned by codex, with the scripted model's config.toml"
podman run --rm --no-healthcheck "${flags[@]}" -v "$volume:/home/codex/.codex" \
  -v "$mock_home/config.toml:/config.toml:ro" --entrypoint bash "$image" \
  -c 'cp /config.toml "$CODEX_HOME/config.toml" && ls -ln "$CODEX_HOME"'

step "podman run (default command: --addr 0.0.0.0:8081)"
# (podman 4.3 cannot schedule the periodic health check without systemd and says so on stderr;
# `podman healthcheck run` below runs it.)
podman run -d --name "$name" --network host "${flags[@]}" -v "$volume:/home/codex/.codex" \
  -e MOCK_API_KEY="$mock_key" -e CODEX_SERVER_AUTH_TOKEN="$token" "$image" 2>"$work/run.err" \
  || { cat "$work/run.err" >&2; exit 1; }
for _ in $(seq 100); do curl -s -o /dev/null "$url/health" && break; sleep 0.1; done
podman logs "$name" 2>&1 | sed -n 1,3p

step "GET /health"
curl -sS -i "$url/health" | tee "$work/health"
echo
check "/health answers 200" grep -q '^HTTP/1.1 200' "$work/health"

step "the HEALTHCHECK command (podman healthcheck run)"
podman healthcheck run "$name" 2>/dev/null && status=0 || status=$?
echo "exit code $status; health: $(podman inspect "$name" --format '{{.State.Health.Status}}')"
check "the health check exits 0" test "$status" = 0

step "the user"
podman exec "$name" bash -c 'grep -E "^(Name|Uid|Gid)" /proc/1/status; id'
runs_as_1000() { podman exec "$name" grep -qE '^Uid:\s+1000\s+1000\s+1000\s+1000$' /proc/1/status; }
check "the server (pid 1) runs as uid 1000" runs_as_1000

turn() {   # turn MESSAGE [URL]: POST /messages, the SSE stream to stdout
  curl -sS -N "${2:-$url}/messages" -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "$(jq -n --arg m "$1" '{type: "user_message", message: $m}')"
}
done_of() { grep '^data: {"status"' "$1" | sed 's/^data: //'; }

step "POST /messages: say hello"
turn "say hello" | tee "$work/hello"
check "the turn completes with final_response \"hello\"" \
  test "$(done_of "$work/hello" | jq -r '.status + " " + .final_response')" = "completed hello"

step "POST /messages: run ls /"
turn "run ls /" | tee "$work/ls"
ls_ran() {
  grep '^data: {"type":"item.completed"' "$work/ls" | sed 's/^data: //' | jq -e -s '
    map(select(.item.type == "command_execution") | .item) | length == 1 and (.[0]
    | .exit_code == 0 and (.aggregated_output | test("^bin\n") and test("\nworkspace\n")))' >/dev/null
}
check "codex ran ls / in the image (exit 0, /workspace listed, no locale warning)" ls_ran
check "the turn completes" test "$(done_of "$work/ls" | jq -r .status)" = completed

step "GET / (web console)"
curl -sS -o "$work/console" -w '%{http_code} %{content_type} %{size_download} bytes\n' "$url/" | tee "$work/console.status"
check "the console answers 200 with HTML" grep -q '^200 text/html' "$work/console.status"

step "SIGTERM"
podman kill --signal TERM "$name" >/dev/null
code="$(podman wait "$name")"
podman logs "$name" 2>&1 | tail -2
echo "exit code $code"
check "SIGTERM: the server exits 0" test "$code" = 0

step "codex's sandbox: bypass off, workspace-write, on --addr 127.0.0.1:8082"
podman run -d --name "$name-sandbox" --network host "${flags[@]}" -v "$volume:/home/codex/.codex" \
  -e MOCK_API_KEY="$mock_key" -e CODEX_SERVER_AUTH_TOKEN="$token" "$image" \
  --addr 127.0.0.1:8082 --dangerously-bypass-approvals-and-sandbox false \
  --codex-config 'sandbox_mode="workspace-write"' 2>"$work/run.err" \
  || { cat "$work/run.err" >&2; exit 1; }
for _ in $(seq 100); do curl -s -o /dev/null "$sandbox_url/health" && break; sleep 0.1; done
podman logs "$name-sandbox" 2>&1 | grep -E 'listening|Mode'
podman healthcheck run "$name-sandbox" 2>/dev/null && status=0 || status=$?
check "the health check follows --addr 127.0.0.1:8082 (exit 0)" test "$status" = 0

turn "run touch /workspace/inside.txt && echo wrote inside" "$sandbox_url" | tee "$work/inside"
check "a write inside /workspace works" \
  test "$(done_of "$work/inside" | jq -r '.status + " " + .final_response')" = "completed ran: wrote inside"
# codex exec reports no command item for a command its sandbox stopped; the model's answer
# carries the command's output.
turn "run touch /home/codex/outside.txt" "$sandbox_url" | tee "$work/outside"
check "a write outside it is refused (Read-only file system)" \
  test "$(done_of "$work/outside" | jq -r .final_response)" = "ran: touch: cannot touch '/home/codex/outside.txt': Read-only file system"
check "and the file is not there" podman exec "$name-sandbox" test ! -e /home/codex/outside.txt
podman kill --signal TERM "$name-sandbox" >/dev/null
podman wait "$name-sandbox" >/dev/null

echo
if [ "$failed" = 0 ]; then echo "all checks passed"; else echo "some checks FAILED"; fi
exit "$failed"
