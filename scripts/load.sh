#!/usr/bin/env bash
# Starts a development server on a free loopback port, drives it with
# kes-load (generate, decrypt) for LOAD_DURATION each, and stops it.
set -euo pipefail
duration=${LOAD_DURATION:-10s}
concurrency=${LOAD_CONCURRENCY:-8}

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/kes" ./cmd/kes
go build -o "$work/kes-load" ./cmd/kes-load

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$work/kes" server --dev --addr "127.0.0.1:$port" --data "$work/data" >"$work/server.out" 2>"$work/server.err" &
server=$!

for _ in $(seq 100); do
  grep -q '^export KES_API_KEY=' "$work/server.out" 2>/dev/null && break
  sleep 0.1
done
api_key=$(sed -n 's/^export KES_API_KEY=//p' "$work/server.out")
[ -n "$api_key" ] || { echo "load: server did not start:"; cat "$work/server.err"; exit 1; } >&2

export KES_SERVER="https://127.0.0.1:$port" KES_API_KEY="$api_key"
for op in generate decrypt; do
  "$work/kes-load" -k --op "$op" -c "$concurrency" -d "$duration"
  echo
done
