#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/kubernetes. Run from anywhere:
#
#   bash deploy/test-manifests.sh
#
# On a scratch copy of deploy/kubernetes (the tree is never written to):
#   1. deploy/gen-webhook-certs.sh generates the secrets of each overlay
#      (and is idempotent: a second run changes no certificate; --renew
#      reissues the leaves under the same CA; --new-ca, --renew,
#      --drop-previous-ca replace the CA);
#   2. `kubectl kustomize` renders base, dev, production, and base +
#      components/cert-manager;
#   3. `kubernetes-validate --strict` accepts every rendered object (Kubernetes
#      1.30 and 1.33 schemas; cert-manager's own kinds excepted, having no
#      schema there);
#   4. deploy/check_manifests.py checks what the schema cannot: the webhooks'
#      rules cover exactly the kinds the gateway reads, timeoutSeconds exceeds
#      the gateway's deadline, exemptions, fail-closed settings, the caBundle
#      is the CA of the serving certificate, pod hardening, references to
#      Secrets/ConfigMaps/files, the headless Service, replicas, PDBs, HPA,
#      NetworkPolicy reachability, Redis AUTH/TLS/no persistence, and (with a
#      built verifier) the shipped policy's decisions.
# Needs kubectl (with kustomize), openssl, and a Python with PyYAML plus
# kubernetes-validate: .local/venv (scripts/install-deps.sh), else PATH.
# Exits non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.33.0"}

step() { printf '\n== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

command -v kubectl >/dev/null || die "kubectl not found: put kubectl 1.27 or later on PATH (Debian 12 packages only 1.20, too old for Kustomize components)"
command -v openssl >/dev/null || die "openssl not found"
VALIDATE=$ROOT/.local/venv/bin/kubernetes-validate
[ -x "$VALIDATE" ] || VALIDATE=$(command -v kubernetes-validate) || die "kubernetes-validate not found (pip install kubernetes-validate)"
PYTHON=$ROOT/.local/venv/bin/python
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
"$PYTHON" -c 'import yaml' 2>/dev/null || die "$PYTHON has no PyYAML (pip install pyyaml)"
VERIFIER_BIN=${PORTCULLIS_VERIFIER_BIN:-}
if [ -z "$VERIFIER_BIN" ]; then
  for b in target/debug/portcullis-verifier target/release/portcullis-verifier; do
    [ -x "$b" ] && { VERIFIER_BIN=$ROOT/$b; break; }
  done
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp -r deploy/kubernetes "$TMP/kubernetes"
rm -rf "$TMP"/kubernetes/overlays/*/secrets
K=$TMP/kubernetes
# base + the cert-manager component, as an overlay would combine them.
mkdir -p "$K/overlays/cert-manager"
cat >"$K/overlays/cert-manager/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: portcullis
labels:
  - pairs:
      app.kubernetes.io/part-of: portcullis
    includeSelectors: false
resources:
  - ../../base
components:
  - secrets
  - ../../components/cert-manager
EOF

step "shell scripts parse"
for s in deploy/gen-webhook-certs.sh deploy/test-manifests.sh; do
  bash -n "$s" || die "$s does not parse"
  echo "  ok    $s"
done
if command -v shellcheck >/dev/null; then
  shellcheck deploy/gen-webhook-certs.sh deploy/test-manifests.sh || die "shellcheck"
  echo "  ok    shellcheck"
fi

step "gen-webhook-certs.sh"
for o in dev production; do
  bash deploy/gen-webhook-certs.sh "$K/overlays/$o" >"$TMP/gen-$o.log" || { cat "$TMP/gen-$o.log"; die "gen-webhook-certs.sh $o"; }
  echo "  ok    secrets generated for $o"
done
bash deploy/gen-webhook-certs.sh --cert-manager "$K/overlays/cert-manager" >"$TMP/gen-cm.log" || { cat "$TMP/gen-cm.log"; die "gen-webhook-certs.sh --cert-manager"; }
[ ! -e "$K/overlays/cert-manager/secrets/ca.key" ] || die "--cert-manager made a CA"
echo "  ok    --cert-manager: only the Redis password and the HMAC key"
S=$K/overlays/dev/secrets
{ [ "$(stat -c %a "$S")" = 700 ] && [ "$(stat -c %a "$S/ca.key")" = 600 ]; } || die "secrets directory or keys readable by others"
echo "  ok    secrets directory 0700, keys 0600"
grep -qx '\*' "$S/.gitignore" || die "secrets/.gitignore missing"
echo "  ok    secrets directory ignores itself in git"
sums() { (cd "$1" && sha256sum ca.crt ca.key gateway.crt verifier.crt redis.crt gateway-client.crt redis-password hmac.key); }
before=$(sums "$S")
bash deploy/gen-webhook-certs.sh "$K/overlays/dev" >/dev/null
[ "$before" = "$(sums "$S")" ] || die "a second run changed the secrets"
echo "  ok    idempotent: a second run keeps every key and certificate"
ca_before=$(sha256sum "$S/ca.crt")
bash deploy/gen-webhook-certs.sh --renew "$K/overlays/dev" >/dev/null
{ [ "$ca_before" = "$(sha256sum "$S/ca.crt")" ] && ! cmp -s <(echo "$before" | grep ' gateway.crt') <(cd "$S" && sha256sum gateway.crt); } \
  || die "--renew must reissue leaves under the same CA"
openssl verify -CAfile "$S/ca.crt" "$S/gateway.crt" >/dev/null || die "renewed gateway.crt does not verify"
echo "  ok    --renew reissues the leaves under the same CA"
# CA replacement in three applies: trust both, reissue, drop the old one.
leaves_before=$(cd "$S" && sha256sum gateway.crt verifier.crt redis.crt gateway-client.crt)
bash deploy/gen-webhook-certs.sh --new-ca "$K/overlays/dev" >/dev/null
{ [ "$(grep -c 'BEGIN CERTIFICATE' "$S/ca-bundle.crt")" = 2 ] \
  && [ "$leaves_before" = "$(cd "$S" && sha256sum gateway.crt verifier.crt redis.crt gateway-client.crt)" ] \
  && openssl verify -CAfile "$S/ca-bundle.crt" "$S/gateway.crt" >/dev/null \
  && ! openssl verify -CAfile "$S/ca.crt" "$S/gateway.crt" >/dev/null 2>&1; } \
  || die "--new-ca must add a CA to the trust bundle and keep the certificates in use"
echo "  ok    --new-ca: old and new CA trusted, certificates in use kept"
bash deploy/gen-webhook-certs.sh --renew "$K/overlays/dev" >/dev/null
for l in gateway verifier redis gateway-client; do
  openssl verify -CAfile "$S/ca.crt" "$S/$l.crt" >/dev/null || die "--renew after --new-ca: $l.crt not from the new CA"
done
echo "  ok    --renew: every certificate reissued by the new CA"
bash deploy/gen-webhook-certs.sh --drop-previous-ca "$K/overlays/dev" >/dev/null
{ [ "$(grep -c 'BEGIN CERTIFICATE' "$S/ca-bundle.crt")" = 1 ] && cmp -s "$S/ca.crt" "$S/ca-bundle.crt"; } || die "--drop-previous-ca"
echo "  ok    --drop-previous-ca: only the new CA is trusted"

step "kubectl kustomize"
mkdir -p "$TMP/rendered"
VARIANTS=(base dev production cert-manager)
for v in "${VARIANTS[@]}"; do
  dir=$K/overlays/$v
  [ "$v" = base ] && dir=$K/base
  kubectl kustomize "$dir" >"$TMP/rendered/$v.yaml" || die "kubectl kustomize $v"
  echo "  ok    $v renders ($(grep -c '^kind:' "$TMP/rendered/$v.yaml") objects)"
done

step "kubernetes-validate --strict"
for v in "${VARIANTS[@]}"; do
  # cert-manager's kinds have no schema in kubernetes-validate: leave them out.
  "$PYTHON" - "$TMP/rendered/$v.yaml" "$TMP/rendered/$v.core.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if not d["apiVersion"].startswith("cert-manager.io/")]
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
EOF
  for k in $K8S_VERSIONS; do
    "$VALIDATE" --strict --quiet -k "$k" "$TMP/rendered/$v.core.yaml" || die "kubernetes-validate $v ($k)"
    echo "  ok    $v: every object valid for Kubernetes $k (strict)"
  done
done

step "webhook rules against the gateway source"
"$PYTHON" deploy/check_manifests.py --source-kinds gateway/src/admission/extract.rs || die "kinds"

failed=0
for v in "${VARIANTS[@]}"; do
  step "check_manifests.py $v"
  "$PYTHON" deploy/check_manifests.py "$v" "$TMP/rendered/$v.yaml" ${VERIFIER_BIN:+--verifier-bin "$VERIFIER_BIN"} || failed=1
done
((failed == 0)) || die "manifest checks failed (see FAIL lines above)"

printf '\nmanifests: all checks passed\n'
