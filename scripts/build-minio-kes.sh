#!/usr/bin/env bash
# Builds the kes binary of minio/kes v0.24.0 (the compatibility anchor)
# from the Go module proxy, in a temporary module, into the directory
# given as the only argument, and prints the binary's path. A binary
# built before in that directory is reused. Used by scripts/compare.sh
# and by the rollback test (cmd/kes/rollback_test.go).
set -euo pipefail
version=v0.24.0
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd)
bin="$dir/minio-kes-$version"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
(
  cd "$work" && mkdir m && cd m
  export GOFLAGS=-mod=mod GOWORK=off GOPATH="$work/gopath" GOMODCACHE="$(go env GOMODCACHE)"
  go mod init build.invalid/minio-kes >/dev/null 2>&1
  go get "github.com/minio/kes@$version" >&2
  go get "github.com/minio/kes/cmd/kes@$version" >&2
  go build -o "$work/kes" github.com/minio/kes/cmd/kes
)
mv "$work/kes" "$bin.tmp$$"
mv "$bin.tmp$$" "$bin"
echo "$bin"
