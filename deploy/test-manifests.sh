#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/kubernetes. Run from anywhere:
#
#   bash deploy/test-manifests.sh
#
# On a scratch copy of deploy/kubernetes (the tree is never written to):
#   1. deploy/gen-webhook-certs.sh generates the secrets of each overlay
#      (and is idempotent: a second run changes no certificate and reuses the
#      remembered --apiserver-cidr; --renew reissues the leaves under the
#      same CA; --new-ca, --renew, --drop-previous-ca replace the CA; the API
#      server's client CA is separate and can be replaced too); a first run
#      without --apiserver-cidr, and a bad CIDR, are refused; the API server's
#      client certificate, kubeconfig and AdmissionConfiguration are right;
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
#      NetworkPolicy reachability and the API server's address ranges, the
#      gateway's client authentication and probe listener (production), Redis
#      AUTH/TLS/no persistence, and (with a built verifier) the shipped
#      policy's decisions.
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

step "gen-webhook-certs.sh --apiserver-cidr"
GEN=deploy/gen-webhook-certs.sh
# An overlay of its own for the option's checks.
X=$TMP/scratch-overlay
mkdir -p "$X"
cp "$K/overlays/dev/kustomization.yaml" "$X/"
if bash "$GEN" "$X" >"$TMP/gen-x.log" 2>&1; then die "a first run without --apiserver-cidr succeeded"; fi
{ grep -q -- '--apiserver-cidr is required' "$TMP/gen-x.log" && grep -q 'Network policies' "$TMP/gen-x.log"; } \
  || { cat "$TMP/gen-x.log"; die "a first run without --apiserver-cidr must say the option is required and point at the README"; }
[ ! -e "$X/secrets" ] || die "a refused first run wrote $X/secrets"
echo "  ok    a first run without --apiserver-cidr is refused, naming the option; nothing written"
for bad in 10.0.0.0/33 300.1.2.3/8 010.0.0.0/8 10.0.0.0 10.0.0.5/24 fd00::/129 fd00:::1/128 fd00::1/64 0.0.0.0/0 10.0.0.0/8,nonsense; do
  if bash "$GEN" --apiserver-cidr "$bad" "$X" >"$TMP/gen-x.log" 2>&1; then die "--apiserver-cidr $bad was accepted"; fi
  grep -qF -- "'${bad##*,}'" "$TMP/gen-x.log" || { cat "$TMP/gen-x.log"; die "--apiserver-cidr $bad: the error does not name '${bad##*,}'"; }
done
[ ! -e "$X/secrets" ] || die "a refused run wrote $X/secrets"
echo "  ok    bad CIDRs are refused, each named (prefix out of range, bad address, no prefix, host bits, /0)"
bash "$GEN" --apiserver-cidr 'FD00:10:0::/64' --apiserver-cidr 10.1.0.0/16,fd00:10::/64 "$X" >/dev/null || die "IPv6 --apiserver-cidr refused"
[ "$(grep -v '^#' "$X/secrets/apiserver-cidrs")" = "$(printf 'fd00:10::/64\n10.1.0.0/16')" ] \
  || die "--apiserver-cidr: expected fd00:10::/64 and 10.1.0.0/16, got $(cat "$X/secrets/apiserver-cidrs")"
echo "  ok    IPv6 and IPv4 ranges, repeated and comma-separated, kept in canonical form without duplicates"
bash "$GEN" "$X" >/dev/null || die "a second run without --apiserver-cidr failed"
{ grep -q 'cidr: "fd00:10::/64"' "$X/secrets/kustomization.yaml" && grep -q 'cidr: "10.1.0.0/16"' "$X/secrets/kustomization.yaml"; } \
  || die "a second run without --apiserver-cidr lost the remembered ranges"
bash "$GEN" --apiserver-cidr 10.2.0.0/24 "$X" >/dev/null || die "--apiserver-cidr 10.2.0.0/24"
{ [ "$(grep -v '^#' "$X/secrets/apiserver-cidrs")" = 10.2.0.0/24 ] && ! grep -q 'fd00' "$X/secrets/kustomization.yaml"; } \
  || die "a new --apiserver-cidr must replace the remembered ranges"
echo "  ok    remembered for later runs; a new --apiserver-cidr replaces them"
echo 10.0.0.0/33 >>"$X/secrets/apiserver-cidrs"
if bash "$GEN" "$X" >"$TMP/gen-x.log" 2>&1; then die "a bad remembered range was accepted"; fi
grep -q "'10.0.0.0/33'" "$TMP/gen-x.log" || die "a bad remembered range is not named"
echo "  ok    a bad range in secrets/apiserver-cidrs is refused, named"

step "gen-webhook-certs.sh"
# What each variant is given, and what check_manifests.py expects of it.
declare -A CIDRS=([dev]=private [production]=10.0.0.0/28 [cert-manager]=10.0.0.0/28)
for o in dev production; do
  bash "$GEN" --apiserver-cidr "${CIDRS[$o]}" "$K/overlays/$o" >"$TMP/gen-$o.log" || { cat "$TMP/gen-$o.log"; die "gen-webhook-certs.sh $o"; }
  echo "  ok    secrets generated for $o (--apiserver-cidr ${CIDRS[$o]})"
done
bash "$GEN" --cert-manager --apiserver-cidr "${CIDRS[cert-manager]}" "$K/overlays/cert-manager" >"$TMP/gen-cm.log" \
  || { cat "$TMP/gen-cm.log"; die "gen-webhook-certs.sh --cert-manager"; }
{ [ ! -e "$K/overlays/cert-manager/secrets/ca.key" ] && ! grep -q -- '-tls$' "$K/overlays/cert-manager/secrets/kustomization.yaml"; } \
  || die "--cert-manager made a CA or TLS Secrets"
[ -s "$K/overlays/cert-manager/secrets/apiserver-client.crt" ] || die "--cert-manager: no client certificate for the API server"
echo "  ok    --cert-manager: no main CA, no TLS Secrets; the API server's client CA and certificate all the same"
S=$K/overlays/dev/secrets
{ [ "$(stat -c %a "$S")" = 700 ] && [ "$(stat -c %a "$S/apiserver")" = 700 ] \
  && [ "$(stat -c %a "$S/ca.key")" = 600 ] && [ "$(stat -c %a "$S/apiserver-client-ca.key")" = 600 ] \
  && [ "$(stat -c %a "$S/apiserver/webhook-kubeconfig.yaml")" = 600 ]; } || die "secrets directory or keys readable by others"
echo "  ok    secrets directories 0700, keys 0600"
grep -qx '\*' "$S/.gitignore" || die "secrets/.gitignore missing"
echo "  ok    secrets directory ignores itself in git"

# The API server's client certificate: its own CA, clientAuth only, and the
# control-plane files that carry it.
for o in dev production cert-manager; do
  A=$K/overlays/$o/secrets
  openssl verify -CAfile "$A/apiserver-client-ca.crt" "$A/apiserver-client.crt" >/dev/null \
    || die "$o: apiserver-client.crt does not verify against apiserver-client-ca.crt"
  for other in ca.crt ca-bundle.crt; do
    [ ! -e "$A/$other" ] || ! openssl verify -CAfile "$A/$other" "$A/apiserver-client.crt" >/dev/null 2>&1 \
      || die "$o: apiserver-client.crt verifies against $other (must be a separate CA)"
  done
  if [ -e "$A/ca.crt" ]; then
    ! openssl verify -CAfile "$A/apiserver-client-ca.crt" "$A/gateway-client.crt" >/dev/null 2>&1 \
      || die "$o: gateway-client.crt passes for the API server"
  fi
  eku=$(openssl x509 -noout -ext extendedKeyUsage -in "$A/apiserver-client.crt" | sed 1d | tr -d ' ')
  [ "$eku" = "TLSWebClientAuthentication" ] || die "$o: apiserver-client.crt extended key usage is '$eku', not clientAuth only"
  openssl x509 -noout -subject -nameopt RFC2253 -in "$A/apiserver-client.crt" | grep -qx 'subject=CN=portcullis-apiserver-client' \
    || die "$o: apiserver-client.crt subject is not CN=portcullis-apiserver-client"
  [ "$(openssl x509 -noout -pubkey -in "$A/apiserver-client.crt")" = "$(openssl pkey -pubout -in "$A/apiserver-client.key")" ] \
    || die "$o: apiserver-client.key does not match apiserver-client.crt"
  "$PYTHON" - "$A" <<'EOF' || die "$o: control-plane files (secrets/apiserver/)"
import base64, sys, yaml
d = sys.argv[1]
fail = []
def want(cond, what):
    if not cond:
        fail.append(what)
kc = yaml.safe_load(open(f"{d}/apiserver/webhook-kubeconfig.yaml"))
want(kc.get("apiVersion") == "v1" and kc.get("kind") == "Config", "kubeconfig: apiVersion v1, kind Config")
users = kc.get("users") or []
want([u.get("name") for u in users] == ["portcullis-gateway.portcullis.svc"],
     f"kubeconfig: one user, portcullis-gateway.portcullis.svc (no '*'): {[u.get('name') for u in users]}")
u = (users[0] if users else {}).get("user") or {}
want(set(u) == {"client-certificate-data", "client-key-data"}, f"kubeconfig user: a client certificate only: {sorted(u)}")
want(base64.b64decode(u.get("client-certificate-data", "")) == open(f"{d}/apiserver-client.crt", "rb").read(),
     "kubeconfig: client-certificate-data is apiserver-client.crt")
want(base64.b64decode(u.get("client-key-data", "")) == open(f"{d}/apiserver-client.key", "rb").read(),
     "kubeconfig: client-key-data is apiserver-client.key")
ac = yaml.safe_load(open(f"{d}/apiserver/admission-config.yaml"))
want(ac.get("apiVersion") == "apiserver.config.k8s.io/v1" and ac.get("kind") == "AdmissionConfiguration",
     "admission-config.yaml: apiserver.config.k8s.io/v1 AdmissionConfiguration")
plugins = {p.get("name"): p.get("configuration") for p in ac.get("plugins") or []}
want(set(plugins) == {"ValidatingAdmissionWebhook", "MutatingAdmissionWebhook"} and len(ac["plugins"]) == 2,
     f"admission-config.yaml: both webhook plugins, once each: {sorted(plugins)}")
for name, cfg in plugins.items():
    want(cfg == {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "WebhookAdmissionConfiguration",
                 "kubeConfigFile": "/etc/kubernetes/portcullis/webhook-kubeconfig.yaml"},
         f"admission-config.yaml: {name} reads /etc/kubernetes/portcullis/webhook-kubeconfig.yaml: {cfg}")
for f in fail:
    print(f"  FAIL  {f}")
sys.exit(1 if fail else 0)
EOF
  echo "  ok    $o: apiserver-client.crt from its own CA (not ca.crt), clientAuth only; kubeconfig user portcullis-gateway.portcullis.svc holds it; admission-config.yaml points both plugins at it"
done

sums() {
  (cd "$1" && sha256sum ca.crt ca.key gateway.crt verifier.crt redis.crt gateway-client.crt redis-password hmac.key \
    apiserver-client-ca.crt apiserver-client-ca.key apiserver-client.crt apiserver-cidrs kustomization.yaml \
    apiserver/webhook-kubeconfig.yaml apiserver/admission-config.yaml)
}
before=$(sums "$S")
bash "$GEN" "$K/overlays/dev" >/dev/null
[ "$before" = "$(sums "$S")" ] || die "a second run changed the secrets"
echo "  ok    idempotent: a second run (without --apiserver-cidr) keeps every key, certificate, range and file"
ca_before=$(sha256sum "$S/ca.crt" "$S/apiserver-client-ca.crt")
bash "$GEN" --renew "$K/overlays/dev" >"$TMP/gen-renew.log"
{ [ "$ca_before" = "$(sha256sum "$S/ca.crt" "$S/apiserver-client-ca.crt")" ] \
  && ! cmp -s <(echo "$before" | grep ' gateway.crt') <(cd "$S" && sha256sum gateway.crt) \
  && ! cmp -s <(echo "$before" | grep ' apiserver-client.crt') <(cd "$S" && sha256sum apiserver-client.crt); } \
  || die "--renew must reissue the leaves under the same CAs"
openssl verify -CAfile "$S/ca.crt" "$S/gateway.crt" >/dev/null || die "renewed gateway.crt does not verify"
openssl verify -CAfile "$S/apiserver-client-ca.crt" "$S/apiserver-client.crt" >/dev/null || die "renewed apiserver-client.crt does not verify"
grep -q 'webhook-kubeconfig.yaml: CHANGED' "$TMP/gen-renew.log" || die "--renew: the run must say the kubeconfig changed"
echo "  ok    --renew reissues the leaves under the same CAs, and says the control plane's kubeconfig changed"
# CA replacement in three applies: trust both, reissue, drop the old one.
client_before=$(cd "$S" && sha256sum apiserver-client-ca.crt apiserver-client.crt apiserver-client-ca-bundle.crt)
leaves_before=$(cd "$S" && sha256sum gateway.crt verifier.crt redis.crt gateway-client.crt)
bash "$GEN" --new-ca "$K/overlays/dev" >/dev/null
{ [ "$(grep -c 'BEGIN CERTIFICATE' "$S/ca-bundle.crt")" = 2 ] \
  && [ "$leaves_before" = "$(cd "$S" && sha256sum gateway.crt verifier.crt redis.crt gateway-client.crt)" ] \
  && openssl verify -CAfile "$S/ca-bundle.crt" "$S/gateway.crt" >/dev/null \
  && ! openssl verify -CAfile "$S/ca.crt" "$S/gateway.crt" >/dev/null 2>&1; } \
  || die "--new-ca must add a CA to the trust bundle and keep the certificates in use"
echo "  ok    --new-ca: old and new CA trusted, certificates in use kept"
bash "$GEN" --renew "$K/overlays/dev" >/dev/null
for l in gateway verifier redis gateway-client; do
  openssl verify -CAfile "$S/ca.crt" "$S/$l.crt" >/dev/null || die "--renew after --new-ca: $l.crt not from the new CA"
done
echo "  ok    --renew: every certificate reissued by the new CA"
bash "$GEN" --drop-previous-ca "$K/overlays/dev" >/dev/null
{ [ "$(grep -c 'BEGIN CERTIFICATE' "$S/ca-bundle.crt")" = 1 ] && cmp -s "$S/ca.crt" "$S/ca-bundle.crt"; } || die "--drop-previous-ca"
echo "  ok    --drop-previous-ca: only the new CA is trusted"
{ [ "$(echo "$client_before" | grep ' apiserver-client-ca')" = "$(cd "$S" && sha256sum apiserver-client-ca.crt apiserver-client-ca-bundle.crt)" ] \
  && openssl verify -CAfile "$S/apiserver-client-ca.crt" "$S/apiserver-client.crt" >/dev/null; } \
  || die "replacing the main CA must leave the API server's client CA alone"
echo "  ok    the main CA's replacement leaves the API server's client CA alone"
# Replacing the API server's client CA (README): the gateways trust old and
# new while the control plane switches to the new certificate.
old_client_ca=$(cat "$S/apiserver-client-ca.crt")
mv "$S/apiserver-client-ca.crt" "$S/apiserver-client-ca-previous.crt"
rm "$S/apiserver-client-ca.key"
bash "$GEN" "$K/overlays/dev" >"$TMP/gen-client-ca.log"
{ [ "$(cat "$S/apiserver-client-ca.crt")" != "$old_client_ca" ] \
  && [ "$(grep -c 'BEGIN CERTIFICATE' "$S/apiserver-client-ca-bundle.crt")" = 2 ] \
  && openssl verify -CAfile "$S/apiserver-client-ca.crt" "$S/apiserver-client.crt" >/dev/null \
  && grep -q 'webhook-kubeconfig.yaml: CHANGED' "$TMP/gen-client-ca.log"; } \
  || die "a replaced client CA must issue a new apiserver-client.crt while the gateways trust old and new"
rm "$S/apiserver-client-ca-previous.crt"
bash "$GEN" "$K/overlays/dev" >/dev/null
cmp -s "$S/apiserver-client-ca.crt" "$S/apiserver-client-ca-bundle.crt" || die "dropping the previous client CA"
echo "  ok    the API server's client CA can be replaced: new certificate at once, old CA trusted until removed"

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
  "$PYTHON" deploy/check_manifests.py "$v" "$TMP/rendered/$v.yaml" ${VERIFIER_BIN:+--verifier-bin "$VERIFIER_BIN"} \
    ${CIDRS[$v]:+--apiserver-cidrs "${CIDRS[$v]}"} || failed=1
done
((failed == 0)) || die "manifest checks failed (see FAIL lines above)"

printf '\nmanifests: all checks passed\n'
