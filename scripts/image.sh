#!/bin/sh
# Builds the container image of Containerfile: a static kes binary on an
# empty base. Uses podman, else buildah; on a Debian machine without
# either, installs podman with apt-get (as root). Usage:
#   scripts/image.sh [IMAGE]      (default kes:latest)
set -eu

image=${1:-kes:latest}
go=${GO:-go}
root=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v podman >/dev/null 2>&1 && ! command -v buildah >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		echo "image: installing podman with apt-get" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman >&2
	else
		echo "image: neither podman nor buildah is installed; install one (Debian: apt-get install podman)" >&2
		exit 1
	fi
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
(cd "$root" && CGO_ENABLED=0 "$go" build -trimpath -ldflags "${LDFLAGS:-}" -o "$ctx/kes" ./cmd/kes)
bundle=/etc/ssl/certs/ca-certificates.crt
if [ -f "$bundle" ]; then
	cp "$bundle" "$ctx/ca-certificates.crt"
else
	: >"$ctx/ca-certificates.crt"
fi

if command -v podman >/dev/null 2>&1; then
	podman build -f "$root/Containerfile" -t "$image" "$ctx"
else
	buildah bud -f "$root/Containerfile" -t "$image" "$ctx"
fi
echo "image: built $image" >&2
