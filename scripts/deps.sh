#!/usr/bin/env bash
# Installs the system packages the tests use, if they are missing:
# SoftHSM2 (PKCS#11 tests), OpenSC (pkcs11-tool), PyKMIP (KMIP
# interoperability tests, run with /usr/bin/python3) and OpenSSL (CLI tests
# that check identities against an independent implementation), and zsh
# and fish (the completion scripts are checked with each shell).
set -euo pipefail

missing=()
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || missing+=(softhsm2)
command -v pkcs11-tool >/dev/null || missing+=(opensc)
command -v openssl >/dev/null || missing+=(openssl)
/usr/bin/python3 -c 'import kmip' >/dev/null 2>&1 || missing+=(python3-pykmip)
command -v zsh >/dev/null || missing+=(zsh)
command -v fish >/dev/null || missing+=(fish)

[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo="sudo"
  else
    echo "deps: need root to install ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
