#!/bin/bash
# The container image's HEALTHCHECK: GET /health (which needs no token) from the server, at the
# address and port it listens on, whatever flags it was started with; exit 0 when the status
# line says 200, else 1.
#
# The address is read from the kernel, not from the command line: the listening TCP socket among
# the server process's open files (/proc/PID/fd), looked up in /proc/PID/net/tcp and tcp6. A
# server listening on every address (0.0.0.0 or [::]) is asked on loopback. There is no curl in
# the image: bash's /dev/tcp sends the request.
#
# Usage: healthcheck.sh [PID]   (default: the process running /usr/local/bin/sse-http-server)
set -uo pipefail

server_exe=/usr/local/bin/sse-http-server

pid="${1:-}"
if [ -z "$pid" ]; then
  for dir in $(ls -d /proc/[0-9]* | sort -t / -k 3 -n); do
    if [ "$(readlink "$dir/exe" 2>/dev/null)" = "$server_exe" ]; then
      pid="${dir#/proc/}"
      break
    fi
  done
fi
[ -n "$pid" ] && [ -d "/proc/$pid" ] || { echo "healthcheck: no server process" >&2; exit 1; }

# The inodes of the process's sockets: /proc/PID/fd/N -> socket:[INODE].
declare -A sockets=()
for fd in "/proc/$pid/fd/"*; do
  link="$(readlink "$fd" 2>/dev/null)" || continue
  case "$link" in socket:\[*\]) inode="${link#socket:[}"; sockets["${inode%]}"]=1 ;; esac
done

# /proc/net/tcp writes an IPv4 address as one 32-bit word, and tcp6 an IPv6 address as four,
# each in the host's byte order (little-endian on x86-64 and arm64).
swap_bytes() { echo "${1:6:2}${1:4:2}${1:2:2}${1:0:2}"; }
ipv4() {
  local word
  word="$(swap_bytes "$1")"
  echo "$((16#${word:0:2})).$((16#${word:2:2})).$((16#${word:4:2})).$((16#${word:6:2}))"
}
ipv6() {
  local hex="" i word
  for i in 0 8 16 24; do hex+="$(swap_bytes "${1:i:8}")"; done
  echo "${hex:0:4}:${hex:4:4}:${hex:8:4}:${hex:12:4}:${hex:16:4}:${hex:20:4}:${hex:24:4}:${hex:28:4}"
}

host=""
port=""
for table in tcp tcp6; do
  # sl local_address rem_address st ... inode: state 0A is LISTEN.
  while read -r _ local _ state _ _ _ _ _ inode _; do
    [ "$state" = 0A ] && [ -n "${sockets[$inode]:-}" ] || continue
    address="${local%:*}"
    port="$((16#${local##*:}))"
    if [ "$table" = tcp ]; then
      if [ "$address" = 00000000 ]; then host=127.0.0.1; else host="$(ipv4 "$address")"; fi
    else
      if [ "$address" = 00000000000000000000000000000000 ]; then host=::1; else host="$(ipv6 "$address")"; fi
    fi
    break 2
  done < <(tail -n +2 "/proc/$pid/net/$table" 2>/dev/null)
done
[ -n "$port" ] || { echo "healthcheck: process $pid listens on no TCP port" >&2; exit 1; }

exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
head -n 1 <&3 | grep -q '^HTTP/1\.[01] 200 '
