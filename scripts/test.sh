#!/usr/bin/env bash
# Runs every test: formatting, clippy, unit, property and end-to-end tests
# against real components on 127.0.0.1. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

# One-shot builds gain nothing from incremental state, which is large.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export PROTOC=${PROTOC:-/usr/bin/protoc}
export PORTCULLIS_PYTHON="$PWD/.local/venv/bin/python"
export PATH="$PWD/.local/venv/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The benches that need crate internals (required-features).
cargo clippy -p portcullis-verifier --features bench-internals --all-targets --locked -- -D warnings
echo "== cargo build (binaries used by the end-to-end tests)"
cargo build --workspace --locked
echo "== Kubernetes manifests"
bash deploy/test-manifests.sh
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
# Doc tests are not run by nextest.
cargo test --workspace --locked --doc
# A short fuzz smoke of every parser that faces network input (seconds per
# target; scripts/fuzz.sh without --smoke is the long run).
echo "== fuzz harness lockfile matches the verifier's dependencies"
cargo metadata --locked --format-version 1 --manifest-path verifier/fuzz/Cargo.toml >/dev/null
echo "== fuzz smoke"
bash scripts/fuzz.sh --smoke 3
