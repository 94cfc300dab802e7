#!/bin/bash
# Capture Notary v1 trust data produced by the real notary CLI + notary-server.
# Run after `notary_env.py up /work/scratch/notary-env/d --ignore-stdin`; copies of
# s1/ s2/ s3/ and the exported keys were then put into testdata/notary-cli/.
set -euo pipefail
D=/work/scratch/notary-env/d
PY=/opt/pcvenv/bin/python
NE=/work/main/tests/fixtures/notary/notary_env.py
URL=$(jq -r .server_url $D/env.json)
CA=$D/certs/ca.crt
OUT=${OUT:-/work/scratch/notary-env/capture}
GUN=${GUN:-registry.test/portcullis/app}
DA=sha256:$(printf a | sha256sum | cut -d' ' -f1)
DB=sha256:$(printf b | sha256sum | cut -d' ' -f1)
DC=sha256:$(printf c | sha256sum | cut -d' ' -f1)
DD=sha256:$(printf d | sha256sum | cut -d' ' -f1)
DE=sha256:$(printf e | sha256sum | cut -d' ' -f1)
rm -rf "$OUT"; mkdir -p "$OUT"
fetch() { # state-dir role [outname]
  local dir=$1 role=$2 name=${3:-$2}
  mkdir -p "$(dirname "$dir/$name.json")"
  local code
  code=$(curl -sS --cacert $CA -o "$dir/$name.json" -w '%{http_code}' "$URL/v2/$GUN/_trust/tuf/$role.json")
  if [ "$code" != 200 ]; then echo "$role -> $code" >&2; rm -f "$dir/$name.json"; fi
}
snap() { # state-dir
  local dir=$OUT/$1; mkdir -p $dir
  for r in root timestamp snapshot targets targets/releases targets/alice 1.root 2.root 3.root; do fetch $dir $r; done
}
$PY $NE sign $D --gun $GUN --tag v1 --digest $DA --size 101 --roles targets/releases > $OUT/sign1.json
snap s1
$PY $NE sign $D --gun $GUN --tag both --digest $DB --size 102 --roles targets/releases targets/alice > $OUT/sign2.json
$PY $NE sign $D --gun $GUN --tag split --digest $DC --size 103 --roles targets/releases > $OUT/sign3.json
$PY $NE sign $D --gun $GUN --tag split --digest $DD --size 104 --roles targets/alice > $OUT/sign4.json
$PY $NE sign $D --gun $GUN --tag top --digest $DE --size 105 > $OUT/sign5.json
snap s2
$PY $NE rotate-root $D --gun $GUN > $OUT/rotate.json
snap s3
date -u +%Y-%m-%dT%H:%M:%SZ > $OUT/captured_at
