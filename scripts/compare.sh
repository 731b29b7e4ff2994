#!/usr/bin/env bash
# Builds minio/kes v0.24.0 from the Go module proxy in a temporary module
# and this server, starts both on free loopback ports with identical
# configs (fs keystore, audit off), and drives each with kes-load in
# alternating pairs (COMPARE_PAIRS, default 5) for generate, decrypt and
# bulk decrypt of COMPARE_BATCH ciphertexts (minio/kes has no bulk API:
# there one request is that many single decrypts), with
# COMPARE_CONCURRENCY (64) concurrent requests over COMPARE_CONNECTIONS
# (4) HTTP/2 connections. It prints the medians of throughput, server
# CPU per request (from /proc/<pid>/stat) and p99 latency, and the
# ratios ours ÷ minio/kes.
# Everything it starts is stopped and its files removed on exit.
set -euo pipefail
pairs=${COMPARE_PAIRS:-5}
duration=${COMPARE_DURATION:-10s}
concurrency=${COMPARE_CONCURRENCY:-64}
connections=${COMPARE_CONNECTIONS:-4}
batch=${COMPARE_BATCH:-10}
root=$(pwd)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building minio/kes v0.24.0 and this server..." >&2
# COMPARE_MINIO_DIR keeps the minio/kes build between runs.
cp "$(scripts/build-minio-kes.sh "${COMPARE_MINIO_DIR:-$work/minio-build}")" "$work/minio-kes"
go build -o "$work/kes" ./cmd/kes
go build -o "$work/kes-load" ./cmd/kes-load

api_key=$("$work/minio-kes" identity new 2>&1 | sed -n 's/^ *\(kes:v1:[^ ]*\).*/\1/p' | head -1)
identity=$("$work/minio-kes" identity of "$api_key" 2>&1 | grep -Eo '[0-9a-f]{64}' | head -1)
[ -n "$api_key" ] && [ -n "$identity" ] || { echo "compare: could not create an API key" >&2; exit 1; }
"$work/minio-kes" identity new --ip 127.0.0.1 --key "$work/server.key" --cert "$work/server.crt" localhost >/dev/null 2>&1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
config() { # name port
  cat >"$work/$1.yaml" <<YAML
version: v1
address: 127.0.0.1:$2
admin:
  identity: $identity
tls:
  key: $work/server.key
  cert: $work/server.crt
cache:
  expiry:
    any: 5m
    unused: 30s
log:
  error: on
  audit: off
keystore:
  fs:
    path: $work/$1-keys
YAML
}
start() { # name binary -> pid, port
  local port; port=$(free_port)
  config "$1" "$port"
  "$2" server --config "$work/$1.yaml" >"$work/$1.out" 2>"$work/$1.err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  eval "$1_pid=$pid $1_port=$port"
}
start minio "$work/minio-kes"
start ours "$work/kes"

tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run name op -> "ops/s cpu_us/op p99_us"
run() {
  local pid port out before after
  eval "pid=\$$1_pid port=\$$1_port"
  before=$(cpu_ticks "$pid")
  out=$(KES_SERVER="https://127.0.0.1:$port" KES_API_KEY="$api_key" "$work/kes-load" -k --op "$2" -c "$concurrency" --connections "$connections" --batch "$batch" -d "$duration" --name compare)
  after=$(cpu_ticks "$pid")
  echo "$out" | awk -v t="$tck" -v d="$((after - before))" '
    / ok, / { ok = $(NF-5) + 0; for (i = 1; i <= NF; i++) if ($i == "ok,") ok = $(i-1) }
    /^throughput:/ { tp = $2 }
    /^latency:/ { for (i = 1; i <= NF; i++) if ($i == "p99") p99 = $(i+1) }
    END {
      # p99 is a Go duration: convert to microseconds.
      v = p99; u = 1
      if (v ~ /ms$/) { sub(/ms$/, "", v); u = 1000 } else if (v ~ /µs$/) { sub(/µs$/, "", v); u = 1 } else if (v ~ /ns$/) { sub(/ns$/, "", v); u = 0.001 } else if (v ~ /s$/) { sub(/s$/, "", v); u = 1000000 }
      printf "%s %.1f %.0f\n", tp, (d / t * 1e6) / ok, v * u
    }'
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "minio/kes v0.24.0 against this server ($(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)): $pairs alternating pairs of $duration, $concurrency concurrent requests over $connections connections, $(nproc) cores"
printf '%-12s %-7s %12s %14s %10s\n' op server ops/s cpu-µs/req p99-µs
for op in generate decrypt bulk-decrypt; do
  v=${op//-/_} # a shell variable name has no dash
  : >"$work/$op.minio"; : >"$work/$op.ours"
  for i in $(seq "$pairs"); do
    # Alternate which server goes first.
    if [ $((i % 2)) -eq 1 ]; then order="minio ours"; else order="ours minio"; fi
    for s in $order; do run "$s" "$op" >>"$work/$op.$s"; done
  done
  for s in minio ours; do
    tp=$(cut -d' ' -f1 "$work/$op.$s" | median)
    cpu=$(cut -d' ' -f2 "$work/$op.$s" | median)
    p99=$(cut -d' ' -f3 "$work/$op.$s" | median)
    eval "${v}_${s}_tp=$tp ${v}_${s}_cpu=$cpu ${v}_${s}_p99=$p99"
    printf '%-12s %-7s %12.0f %14.1f %10.0f\n' "$op" "$s" "$tp" "$cpu" "$p99"
  done
  eval "awk -v a=\$${v}_ours_tp -v b=\$${v}_minio_tp -v c=\$${v}_ours_cpu -v d=\$${v}_minio_cpu -v e=\$${v}_ours_p99 -v f=\$${v}_minio_p99" \
    "'BEGIN { printf \"%-12s ratio   throughput %.2fx  cpu/req %.2fx  p99 %.2fx (ours ÷ minio/kes)\n\", \"$op\", a / b, c / d, e / f }'"
done
