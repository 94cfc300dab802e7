#!/usr/bin/env bash
# Generates the TLS material and keys of a Portcullis installation and the
# Kustomize component that turns them into Secrets and fills in the webhooks'
# caBundle.
#
#   deploy/gen-webhook-certs.sh [options] OVERLAY_DIR
#   e.g. deploy/gen-webhook-certs.sh deploy/kubernetes/overlays/production
#        kubectl apply -k deploy/kubernetes/overlays/production
#
# Writes OVERLAY_DIR/secrets/ (private keys: never commit it; it ignores
# itself in git):
#   ca.key, ca.crt          a CA (ECDSA P-256, 10 years) that issues all of:
#   gateway.{key,crt}       webhook serving certificate, for
#                           portcullis-gateway.portcullis.svc (what the API
#                           server calls)
#   gateway-client.{key,crt} the gateways' client certificate (mTLS to the
#                           verifiers; clientAuth only)
#   verifier.{key,crt}      the verifiers' serving certificate, for
#                           portcullis-verifier-headless.portcullis.svc
#   redis.{key,crt}         Redis's serving certificate, for
#                           portcullis-redis(-replica).portcullis.svc
#   ca-bundle.crt           what everything trusts: ca.crt, plus the previous
#                           CA while one is being replaced (--new-ca)
#   redis-password, redis-auth.conf   the Redis password (64 hex digits)
#   hmac.key                the key that seals shared-cache values
#   kustomization.yaml      a Kustomize Component: the Secrets
#                           portcullis-{gateway,gateway-client,verifier,redis}-tls,
#                           portcullis-redis-auth, portcullis-cache-hmac, and
#                           a replacement that copies ca-bundle.crt into
#                           both webhooks' clientConfig.caBundle
# The overlay includes it with `components: [secrets]`.
#
# Runs are idempotent: existing keys and certificates are kept; a leaf
# certificate is reissued when it is missing, expires within 30 days, is not
# issued by a trusted CA (ca-bundle.crt), or its names changed.
#
# Replacing the CA without an outage, applying after each step and waiting
# for the rollout:
#   1. --new-ca            new CA; everything trusts old and new; the
#                          certificates in use (old CA) are kept
#   2. --renew             certificates reissued by the new CA
#   3. --drop-previous-ca  only the new CA is trusted
#
# Options:
#   --days N           validity of leaf certificates in days (default 365)
#   --renew            reissue every leaf certificate now (same CA)
#   --new-ca           make a new CA; the old CA certificate stays trusted
#                      (ca-bundle.crt) and existing certificates are kept
#   --drop-previous-ca stop trusting the previous CA
#   --cert-manager     only the Redis password and the HMAC key; the TLS
#                      Secrets and the caBundle come from cert-manager
#                      (components/cert-manager)
#   -h, --help
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DAYS=365
RENEW=0
NEW_CA=0
DROP_PREVIOUS=0
CERT_MANAGER=0
OVERLAY=""
while (($#)); do
  case "$1" in
    --days) DAYS=${2:?--days needs a number}; shift 2 ;;
    --days=*) DAYS=${1#*=}; shift ;;
    --renew) RENEW=1; shift ;;
    --new-ca) NEW_CA=1; shift ;;
    --drop-previous-ca) DROP_PREVIOUS=1; shift ;;
    --cert-manager) CERT_MANAGER=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$OVERLAY" ] || { echo "one OVERLAY_DIR only" >&2; exit 2; }; OVERLAY=$1; shift ;;
  esac
done
[ -n "$OVERLAY" ] || { usage >&2; exit 2; }
if ! [[ "$DAYS" =~ ^[1-9][0-9]*$ ]]; then echo "--days: not a positive number: $DAYS" >&2; exit 2; fi
[ -f "$OVERLAY/kustomization.yaml" ] || { echo "$OVERLAY: no kustomization.yaml (expected an overlay directory)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "openssl is required" >&2; exit 2; }

# Names fixed by the manifests in deploy/kubernetes/base.
NS=portcullis
GATEWAY_SVC=portcullis-gateway
VERIFIER_SVC=portcullis-verifier-headless
REDIS_SVC=portcullis-redis
REDIS_REPLICA_SVC=portcullis-redis-replica

OUT=$OVERLAY/secrets
umask 077
mkdir -p "$OUT"
chmod 700 "$OUT"
printf '*\n' >"$OUT/.gitignore"
cd "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log() { printf '  %s\n' "$*"; }

# Every DNS name a Service can be reached by.
service_names() {
  local svc=$1
  printf 'DNS:%s,DNS:%s.%s,DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local' \
    "$svc" "$svc" "$NS" "$svc" "$NS" "$svc" "$NS"
}

# Writes a random secret (hex, no trailing newline) to FILE unless it exists.
random_secret() {
  local file=$1
  if [ ! -s "$file" ]; then
    printf '%s' "$(openssl rand -hex 32)" >"$file"
    log "$file: generated"
  else
    log "$file: kept"
  fi
}

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

echo "Portcullis secrets in $OUT"

# ---- keys that are not certificates -----------------------------------
random_secret redis-password
random_secret hmac.key
PW=$(cat redis-password)
# Redis reads the password from this file (`include` in redis.conf), never
# from its command line; masterauth is for a replica.
printf 'requirepass %s\nmasterauth %s\n' "$PW" "$PW" >redis-auth.conf

if ((CERT_MANAGER == 0)); then
  # ---- the CA ----------------------------------------------------------
  if ((NEW_CA)) && [ -s ca.crt ]; then
    mv ca.crt ca-previous.crt
    rm -f ca.key
    log "ca.crt: moved to ca-previous.crt (still trusted until --drop-previous-ca)"
    log "next: apply, wait for the rollout, then run with --renew"
  fi
  if ((DROP_PREVIOUS)) && [ -e ca-previous.crt ]; then
    rm -f ca-previous.crt
    log "ca-previous.crt: removed"
  fi
  if [ ! -s ca.crt ] || [ ! -s ca.key ]; then
    new_key ca.key
    cat >"$WORK/ca.cnf" <<EOF
[req]
distinguished_name = dn
x509_extensions = ca
prompt = no
[dn]
CN = Portcullis CA $(openssl rand -hex 4)
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -x509 -new -config "$WORK/ca.cnf" -key ca.key -sha256 -days 3650 \
      -set_serial "0x$(openssl rand -hex 16)" -out ca.crt
    log "ca.crt: new CA"
  else
    log "ca.crt: kept"
  fi
  cat ca.crt >ca-bundle.crt
  [ ! -s ca-previous.crt ] || cat ca-previous.crt >>ca-bundle.crt

  # ---- leaf certificates -------------------------------------------------
  # issue NAME COMMON_NAME EXTENDED_KEY_USAGE SUBJECT_ALT_NAMES
  issue() {
    local name=$1 cn=$2 eku=$3 san=$4 why=""
    if ((RENEW)); then why="--renew"
    elif [ ! -s "$name.crt" ] || [ ! -s "$name.key" ]; then why="new"
    elif [ "$(cat "$name.names" 2>/dev/null)" != "$eku $san" ]; then why="names changed"
    elif ! openssl verify -CAfile ca-bundle.crt "$name.crt" >/dev/null 2>&1; then why="not issued by a trusted CA"
    elif ! openssl x509 -checkend $((30 * 86400)) -noout -in "$name.crt" >/dev/null; then why="expires within 30 days"
    fi
    if [ -z "$why" ]; then
      log "$name.crt: kept (valid until $(openssl x509 -enddate -noout -in "$name.crt" | cut -d= -f2))"
      return
    fi
    new_key "$name.key"
    cat >"$WORK/$name.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $cn
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl req -new -config "$WORK/$name.cnf" -key "$name.key" -out "$WORK/$name.csr"
    openssl x509 -req -in "$WORK/$name.csr" -CA ca.crt -CAkey ca.key -sha256 -days "$DAYS" \
      -set_serial "0x$(openssl rand -hex 16)" -extfile "$WORK/$name.cnf" -extensions leaf \
      -out "$name.crt" 2>/dev/null
    printf '%s' "$eku $san" >"$name.names"
    log "$name.crt: issued ($why), $DAYS days"
  }

  issue gateway "$GATEWAY_SVC.$NS.svc" serverAuth "$(service_names "$GATEWAY_SVC")"
  issue gateway-client "$GATEWAY_SVC-client" clientAuth "$(service_names "$GATEWAY_SVC")"
  issue verifier "$VERIFIER_SVC.$NS.svc" serverAuth "$(service_names "$VERIFIER_SVC")"
  issue redis "$REDIS_SVC.$NS.svc" serverAuth \
    "$(service_names "$REDIS_SVC"),$(service_names "$REDIS_REPLICA_SVC"),DNS:localhost,IP:127.0.0.1"
fi

# ---- the Kustomize component --------------------------------------------
{
  cat <<EOF
# Generated by deploy/gen-webhook-certs.sh. Holds references to private keys
# in this directory: do not commit. Regenerate rather than edit.
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
secretGenerator:
  - name: portcullis-redis-auth
    namespace: $NS
    files:
      - password=redis-password
      - redis-auth.conf
  - name: portcullis-cache-hmac
    namespace: $NS
    files:
      - hmac.key
EOF
  if ((CERT_MANAGER == 0)); then
    for s in gateway:gateway gateway-client:gateway-client verifier:verifier redis:redis; do
      cat <<EOF
  - name: portcullis-${s%%:*}-tls
    namespace: $NS
    type: kubernetes.io/tls
    files:
      - tls.crt=${s#*:}.crt
      - tls.key=${s#*:}.key
      - ca.crt=ca-bundle.crt
EOF
    done
    cat <<EOF
# The webhooks trust the CA bundle (already base64 in the Secret's data).
replacements:
  - source:
      kind: Secret
      name: portcullis-gateway-tls
      fieldPath: "data.[ca.crt]"
    targets:
      - select:
          kind: MutatingWebhookConfiguration
          name: portcullis
        fieldPaths:
          - "webhooks.*.clientConfig.caBundle"
        options:
          create: true
      - select:
          kind: ValidatingWebhookConfiguration
          name: portcullis
        fieldPaths:
          - "webhooks.*.clientConfig.caBundle"
        options:
          create: true
EOF
  else
    echo "# TLS Secrets and the webhooks' caBundle: cert-manager (components/cert-manager)."
  fi
} >kustomization.yaml
log "kustomization.yaml: written"

# Kustomize reads the files with the user's permissions; keys stay 0600.
chmod 600 ./*
echo "Include it in $OVERLAY/kustomization.yaml with 'components: [secrets]', then: kubectl apply -k $OVERLAY"
