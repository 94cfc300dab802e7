#!/usr/bin/env bash
# Fuzzes every parser that faces network input with AFL++ through cargo-afl
# (stable Rust; harness: verifier/fuzz). Seeds come from the test data.
#
#   scripts/fuzz.sh                 long run: FUZZ_SECONDS (600) per target
#   scripts/fuzz.sh --smoke [S]     S seconds per target (3), as the test
#                                   command runs it
#   FUZZ_TARGETS="bundle checkpoint" scripts/fuzz.sh   only these
#
# Prints executions and crashes per target; exits 1 if any target crashed
# (the crashing inputs are kept under .local/fuzz/out/TARGET/default/crashes:
# turn each into a regression test). In --smoke mode a tool that cannot be
# installed or built here is reported and skipped, never a pass of a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mode=long
seconds=${FUZZ_SECONDS:-600}
if [ "${1:-}" = "--smoke" ]; then
  mode=smoke
  seconds=${2:-3}
fi
targets=${FUZZ_TARGETS:-"admission_review reference pattern bundle cosign_layers rekor_body checkpoint certificate notation_envelope timestamp sealed_value notary_metadata attestation_statement condition"}
work="$ROOT/.local/fuzz"
mkdir -p "$work/out" "$work/seeds"

skip() {
  echo "fuzz: $1" >&2
  if [ "$mode" = smoke ]; then
    echo "fuzz: SMOKE SKIPPED (tooling), not a result" >&2
    exit 0
  fi
  exit 1
}

if ! cargo afl --version >/dev/null 2>&1; then
  cargo install cargo-afl --locked --version 0.18.2 >&2 || skip "cannot install cargo-afl"
fi
(cd verifier/fuzz && PROTOC=${PROTOC:-/usr/bin/protoc} cargo afl build --release --locked >&2) \
  || skip "cannot build the harness with cargo afl"
bin="$ROOT/verifier/fuzz/target/release/portcullis-fuzz"

# Seeds: small files from the test data, per target.
seed() {
  local t=$1 dir="$work/seeds/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  case "$t" in
    admission_review) cp tests/data/*.json "$dir/" 2>/dev/null || true
      printf '%s' '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"a","image":"nginx:1"}]}}}}' > "$dir/pod.json" ;;
    reference) printf 'nginx:1.27' > "$dir/a"; printf 'ghcr.io/org/app:v1@sha256:%064d' 0 > "$dir/b" ;;
    pattern) printf 'registry.example.com/team/*:*' > "$dir/a"; printf '**' > "$dir/b" ;;
    bundle) find verifier/tests/data -name '*.json' -size -64k | head -8 | while read -r f; do cp "$f" "$dir/"; done ;;
    notary_metadata) find tests/data/notaryv1 -name '*.json' -size -64k | head -8 | while read -r f; do cp "$f" "$dir/$(basename "$(dirname "$f")")-$(basename "$f")"; done ;;
    attestation_statement) printf '%s' '{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"ab"}}],"predicateType":"https://cosign.sigstore.dev/attestation/vuln/v1","predicate":{"scanner":{"result":{"Results":[{"Target":"a","Vulnerabilities":[{"Severity":"LOW"}]}]}},"metadata":{"scanFinishedOn":"2026-12-01T00:00:00Z"}}}' > "$dir/vuln.json"
      printf '%s' '{"predicate":{"packages":[{"licenseConcluded":"MIT"}],"buildDefinition":{"externalParameters":{"workflow":{"ref":"refs/heads/main"}}}}}' > "$dir/sbom.json" ;;
    condition) printf '%s' 'predicate.a.exists(x, type(x) == map && x.b == "c") && now > timestamp(predicate.t)' > "$dir/a"
      printf '%s' 'size(subject) > 0 && subject.all(s, s.digest.sha256.matches("^[0-9a-f]+$"))' > "$dir/b" ;;
    checkpoint) printf 'log.example\n10\nrs1Y0ZFmdHjkYgKJWLgLZ0ezG4p0eCJ2i4CsWl/jMfk=\n\n\xe2\x80\x94 log.example AAAAAAAA\n' > "$dir/a" ;;
    *) printf '{}' > "$dir/a"; printf '\x30\x03\x02\x01\x00' > "$dir/b" ;;
  esac
  [ -n "$(ls -A "$dir")" ] || printf '{}' > "$dir/empty"
}

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_QUIET=1
failed=0
printf '| target | executions | crashes |\n|---|---|---|\n'
for t in $targets; do
  seed "$t"
  out="$work/out/$t"
  rm -rf "$out"
  PORTCULLIS_FUZZ_TARGET=$t timeout $((seconds + 60)) cargo afl fuzz -V "$seconds" \
    -i "$work/seeds/$t" -o "$out" "$bin" >"$work/$t.log" 2>&1 || true
  stats="$out/default/fuzzer_stats"
  if [ ! -f "$stats" ]; then
    echo "| $t | (did not run: see $work/$t.log) | - |"
    [ "$mode" = smoke ] || failed=1
    continue
  fi
  execs=$(awk -F: '/^execs_done/ {gsub(/ /,"",$2); print $2}' "$stats")
  crashes=$(awk -F: '/^saved_crashes/ {gsub(/ /,"",$2); print $2}' "$stats")
  echo "| $t | $execs | $crashes |"
  if [ "${crashes:-0}" != 0 ]; then
    failed=1
    ls "$out/default/crashes" >&2 || true
  fi
done
exit $failed
