#!/usr/bin/env bash
# The image's size gate: prints the sizes, and fails when what the image holds beyond codex's
# binary and the compiled server grows past the limit (those two are measured on their own:
# they grow with codex and Bun releases, not with what this project puts in the image).
#
# Usage: image-size-gate.sh TOTAL CODEX SERVER COMPRESSED     (all in bytes)
#   TOTAL       the image's root filesystem (du -sb of the mounted image)
#   CODEX       the codex binary
#   SERVER      the compiled server
#   COMPRESSED  the image as a registry stores it: its gzip-compressed layers, config and manifest
# Environment:
#   IMAGE_EXTRA_LIMIT_MB  the limit for everything else, in MB of 10^6 bytes; default 40
set -euo pipefail

[ "$#" -eq 4 ] || { echo "usage: $0 TOTAL CODEX SERVER COMPRESSED (bytes)" >&2; exit 2; }
for value in "$@"; do
  [[ "$value" =~ ^[0-9]+$ ]] || { echo "$0: not a number of bytes: \"$value\"" >&2; exit 2; }
done
total="$1"
codex="$2"
server="$3"
compressed="$4"
limit_mb="${IMAGE_EXTRA_LIMIT_MB:-40}"
extra=$((total - codex - server))

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
echo "root filesystem:       $total bytes ($(mb "$total"))"
echo "codex binary:          $codex bytes ($(mb "$codex"))"
echo "compiled server:       $server bytes ($(mb "$server"))"
echo "everything else:       $extra bytes ($(mb "$extra")), limit $limit_mb MB"
echo "compressed (gzip):     $compressed bytes ($(mb "$compressed"))"

if [ "$extra" -gt $((limit_mb * 1000000)) ]; then
  echo "FAILED: the image holds $(mb "$extra") beyond codex and the server, more than $limit_mb MB" >&2
  exit 1
fi
