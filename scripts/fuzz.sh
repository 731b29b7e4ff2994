#!/usr/bin/env bash
# Runs every fuzz target in the module briefly: scripts/fuzz.sh [duration]
set -euo pipefail
fuzztime=${1:-10s}
status=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== $pkg $target"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" || status=1
  done
done
exit $status
