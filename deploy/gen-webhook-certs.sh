#!/usr/bin/env bash
# Generates the TLS material and keys of a Portcullis installation, the files
# the control plane needs to authenticate itself to the webhooks, and the
# Kustomize component that turns them into Secrets, fills in the webhooks'
# caBundle and sets the API server's address ranges in the NetworkPolicy.
#
#   deploy/gen-webhook-certs.sh [options] --apiserver-cidr CIDR OVERLAY_DIR
#   e.g. deploy/gen-webhook-certs.sh --apiserver-cidr 10.0.0.0/28 \
#            deploy/kubernetes/overlays/production
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
#   apiserver-client-ca.{key,crt}  a SEPARATE CA (ECDSA P-256, 10 years) that
#                           issues only:
#   apiserver-client.{key,crt}  the API server's client certificate towards
#                           the webhooks (CN portcullis-apiserver-client,
#                           clientAuth only). The gateway's --client-ca trusts
#                           this CA alone, so no holder of a certificate from
#                           ca.crt (every Portcullis pod) passes for the API
#                           server.
#   apiserver-client-ca-bundle.crt  what the gateways trust: that CA, plus
#                           apiserver-client-ca-previous.crt while one is
#                           being replaced (see below)
#   apiserver/webhook-kubeconfig.yaml  for the control plane: a kubeconfig
#                           whose user portcullis-gateway.portcullis.svc (the
#                           name the API server looks up for the webhook
#                           Service) holds apiserver-client.{crt,key}
#   apiserver/admission-config.yaml    the AdmissionConfiguration
#                           (kube-apiserver --admission-control-config-file)
#                           that points both webhook plugins at
#                           /etc/kubernetes/portcullis/webhook-kubeconfig.yaml
#   apiserver-cidrs         the --apiserver-cidr ranges, remembered
#   redis-password, redis-auth.conf   the Redis password (64 hex digits)
#   hmac.key                the key that seals shared-cache values
#   kustomization.yaml      a Kustomize Component: the Secrets
#                           portcullis-{gateway,gateway-client,verifier,redis}-tls,
#                           portcullis-gateway-client-ca, portcullis-redis-auth,
#                           portcullis-cache-hmac; a replacement that copies
#                           ca-bundle.crt into both webhooks'
#                           clientConfig.caBundle; and a patch that admits
#                           only the --apiserver-cidr ranges to the gateways'
#                           webhook port (NetworkPolicy
#                           portcullis-gateway-from-apiserver)
# The overlay includes it with `components: [secrets]`. See
# deploy/kubernetes/README.md, "Authenticating the API server", for where the
# apiserver/ files go.
#
# Runs are idempotent: existing keys and certificates are kept; a leaf
# certificate is reissued when it is missing, expires within 30 days, is not
# issued by a trusted CA (ca-bundle.crt; for apiserver-client.crt:
# apiserver-client-ca.crt), or its names changed. When apiserver-client.crt
# changes, so does apiserver/webhook-kubeconfig.yaml: the run says so, and it
# must be installed on the control plane again.
#
# Replacing the CA without an outage, applying after each step and waiting
# for the rollout:
#   1. --new-ca            new CA; everything trusts old and new; the
#                          certificates in use (old CA) are kept
#   2. --renew             certificates reissued by the new CA
#   3. --drop-previous-ca  only the new CA is trusted
# These concern ca.crt only. To replace the API server's client CA:
#   1. mv apiserver-client-ca.crt apiserver-client-ca-previous.crt;
#      rm apiserver-client-ca.key; run this script (new CA and a new
#      apiserver-client.crt; the gateways trust old and new); apply and wait
#      for the rollout
#   2. install the new apiserver/webhook-kubeconfig.yaml on every
#      control-plane node and restart each API server
#   3. rm apiserver-client-ca-previous.crt; run this script; apply
#
# Options:
#   --apiserver-cidr CIDR[,CIDR...]
#                      the address ranges the API server calls webhooks from
#                      (IPv4 or IPv6); repeatable. Required on the first run
#                      for an overlay, then remembered (secrets/apiserver-cidrs);
#                      a new value replaces the remembered one. `private`
#                      stands for 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,
#                      100.64.0.0/10: only for local/dev clusters whose
#                      control-plane address is not known in advance (it
#                      admits most pod networks too). See
#                      deploy/kubernetes/README.md, "Network policies".
#   --days N           validity of leaf certificates in days (default 365)
#   --renew            reissue every leaf certificate now (same CAs)
#   --new-ca           make a new CA; the old CA certificate stays trusted
#                      (ca-bundle.crt) and existing certificates are kept
#   --drop-previous-ca stop trusting the previous CA
#   --cert-manager     of the main CA's material, none: the TLS Secrets and
#                      the caBundle come from cert-manager
#                      (components/cert-manager). The API server's client CA
#                      and certificate, the Redis password and the HMAC key
#                      are still made here.
#   -h, --help
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DAYS=365
RENEW=0
NEW_CA=0
DROP_PREVIOUS=0
CERT_MANAGER=0
OVERLAY=""
CIDR_ARGS=()
while (($#)); do
  case "$1" in
    --days) DAYS=${2:?--days needs a number}; shift 2 ;;
    --days=*) DAYS=${1#*=}; shift ;;
    --apiserver-cidr) CIDR_ARGS+=("${2:?--apiserver-cidr needs CIDR[,CIDR...]}"); shift 2 ;;
    --apiserver-cidr=*) CIDR_ARGS+=("${1#*=}"); shift ;;
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
APISERVER_POLICY=portcullis-gateway-from-apiserver
WEBHOOK_PORT=8443 # the gateways' --listen port, the only one the policy opens
# The user the API server looks up in the webhook kubeconfig for a Service
# webhook: NAME.NAMESPACE.svc (":PORT" appended unless the port is 443).
APISERVER_USER=$GATEWAY_SVC.$NS.svc
# Where admission-config.yaml expects the kubeconfig on control-plane nodes.
CONTROL_PLANE_DIR=/etc/kubernetes/portcullis
PRIVATE_RANGES="10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10"

# ---- the API server's address ranges -----------------------------------
# Checked before anything is written, so a bad value leaves no trace.

# IPv4 dotted quad (decimal, no leading zeros) -> its 32-bit value.
ipv4_value() {
  local ip=$1 o v=0
  [[ $ip =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
  for o in "${BASH_REMATCH[@]:1}"; do
    [[ $o =~ ^(0|[1-9][0-9]*)$ ]] && ((o <= 255)) || return 1
    v=$(((v << 8) | o))
  done
  echo "$v"
}

# IPv6 (hex groups, at most one "::"; no embedded dotted IPv4) -> its eight
# 16-bit groups, as decimal numbers.
ipv6_groups() {
  local ip=$1 head tail g n
  local -a h=() t=() out=()
  [[ $ip =~ ^[0-9A-Fa-f:]+$ ]] || return 1
  [[ $ip != *:::* && $ip != *::*::* ]] || return 1
  # A single ':' may not start or end the address.
  [[ $ip != :* || $ip == ::* ]] || return 1
  [[ $ip != *: || $ip == *:: ]] || return 1
  if [[ $ip == *::* ]]; then
    head=${ip%%::*} tail=${ip#*::}
    [ -z "$head" ] || IFS=: read -ra h <<<"$head"
    [ -z "$tail" ] || IFS=: read -ra t <<<"$tail"
    n=$((8 - ${#h[@]} - ${#t[@]}))
    ((n >= 1)) || return 1
  else
    IFS=: read -ra h <<<"$ip"
    ((${#h[@]} == 8)) || return 1
    n=0
  fi
  for g in "${h[@]}"; do [[ $g =~ ^[0-9A-Fa-f]{1,4}$ ]] || return 1; out+=($((16#$g))); done
  while ((n-- > 0)); do out+=(0); done
  for g in "${t[@]}"; do [[ $g =~ ^[0-9A-Fa-f]{1,4}$ ]] || return 1; out+=($((16#$g))); done
  echo "${out[*]}"
}

# Eight groups -> RFC 5952 text (lower case, longest run of >= 2 zero groups
# as "::"), as Kubernetes and `ip` print it.
ipv6_text() {
  local -a g=("$@")
  local i best=-1 bestlen=1 run=0 start=0 s=""
  for ((i = 0; i < 8; i++)); do
    if ((g[i] == 0)); then
      ((run == 0)) && start=$i
      run=$((run + 1))
      if ((run > bestlen)); then best=$start bestlen=$run; fi
    else
      run=0
    fi
  done
  for ((i = 0; i < 8; i++)); do
    if ((i == best)); then
      s+="::"
      i=$((best + bestlen - 1))
      continue
    fi
    [[ -z $s || $s == *: ]] || s+=":"
    s+=$(printf '%x' "${g[i]}")
  done
  echo "$s"
}

# CIDR -> its canonical text, or an error naming it. Host bits must be zero
# (10.0.0.5/24 is either 10.0.0.5/32 or 10.0.0.0/24).
canonical_cidr() {
  local cidr=$1 addr prefix v mask i bits groups
  local -a g
  if ! [[ $cidr =~ ^([^/]+)/(0|[1-9][0-9]{0,2})$ ]]; then
    echo "--apiserver-cidr: not a CIDR (ADDRESS/PREFIX): '$cidr'" >&2; return 1
  fi
  addr=${BASH_REMATCH[1]} prefix=${BASH_REMATCH[2]}
  if ((prefix == 0)); then
    echo "--apiserver-cidr: '$cidr' admits every source: name the control plane's ranges" >&2; return 1
  fi
  if v=$(ipv4_value "$addr"); then
    ((prefix <= 32)) || { echo "--apiserver-cidr: '$cidr': an IPv4 prefix is 0-32" >&2; return 1; }
    mask=$(((1 << (32 - prefix)) - 1))
    if ((v & mask)); then
      v=$((v & ~mask & 0xffffffff))
      echo "--apiserver-cidr: '$cidr' has host bits set: $((v >> 24)).$(((v >> 16) & 255)).$(((v >> 8) & 255)).$((v & 255))/$prefix, or $addr/32?" >&2
      return 1
    fi
    echo "$addr/$prefix"
  elif groups=$(ipv6_groups "$addr"); then
    read -ra g <<<"$groups"
    ((prefix <= 128)) || { echo "--apiserver-cidr: '$cidr': an IPv6 prefix is 0-128" >&2; return 1; }
    for ((i = 0; i < 8; i++)); do
      bits=$((prefix - 16 * i))
      ((bits >= 16)) && continue
      ((bits < 0)) && bits=0
      if ((g[i] & ((1 << (16 - bits)) - 1))); then
        echo "--apiserver-cidr: '$cidr' has host bits set (or use the /128 of one address)" >&2
        return 1
      fi
    done
    echo "$(ipv6_text "${g[@]}")/$prefix"
  else
    echo "--apiserver-cidr: '$cidr': '$addr' is not an IPv4 or IPv6 address" >&2
    return 1
  fi
}

# Comma-separated CIDRs (and `private`) -> canonical CIDRs, one per line.
expand_cidrs() {
  local item c
  local -a items
  IFS=, read -ra items <<<"$1"
  ((${#items[@]})) || { echo "--apiserver-cidr: empty" >&2; return 1; }
  for item in "${items[@]}"; do
    item=${item//[[:space:]]/}
    if [ "$item" = private ]; then
      expand_cidrs "$PRIVATE_RANGES" || return 1
    elif [ -z "$item" ]; then
      echo "--apiserver-cidr: empty item in '$1'" >&2; return 1
    else
      c=$(canonical_cidr "$item") || return 1
      echo "$c"
    fi
  done
}

CIDR_FILE=$OVERLAY/secrets/apiserver-cidrs
CIDRS=()
if ((${#CIDR_ARGS[@]})); then
  for a in "${CIDR_ARGS[@]}"; do
    expanded=$(expand_cidrs "$a") || exit 2
    mapfile -t -O "${#CIDRS[@]}" CIDRS <<<"$expanded"
    [[ ",${a//[[:space:]]/}," != *,private,* ]] || PRIVATE_USED=1
  done
  CIDR_SOURCE="--apiserver-cidr"
elif [ -s "$CIDR_FILE" ]; then
  while IFS= read -r line; do
    line=${line%%#*}
    line=${line//[[:space:]]/}
    [ -n "$line" ] || continue
    c=$(canonical_cidr "$line") || { echo "in $CIDR_FILE (run again with --apiserver-cidr to replace it)" >&2; exit 2; }
    CIDRS+=("$c")
  done <"$CIDR_FILE"
  ((${#CIDRS[@]})) || { echo "$CIDR_FILE names no range: run again with --apiserver-cidr" >&2; exit 2; }
  CIDR_SOURCE="kept"
else
  cat >&2 <<EOF
--apiserver-cidr is required on the first run for $OVERLAY:
  the address ranges the API server calls the webhooks from, the only sources
  the NetworkPolicy $APISERVER_POLICY lets reach the gateways
  (remembered for later runs). See deploy/kubernetes/README.md, "Network policies".
  For a local cluster whose control-plane address is not known in advance:
  --apiserver-cidr private
EOF
  exit 2
fi
# Without duplicates, in the order given.
mapfile -t CIDRS < <(printf '%s\n' "${CIDRS[@]}" | awk '!seen[$0]++')

OUT=$OVERLAY/secrets
umask 077
mkdir -p "$OUT" "$OUT/apiserver"
chmod 700 "$OUT" "$OUT/apiserver"
printf '*\n' >"$OUT/.gitignore"
cd "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log() { printf '  %s\n' "$*"; }

echo "Portcullis secrets in $OUT"

if [ "$CIDR_SOURCE" = kept ]; then
  log "apiserver-cidrs: kept (${CIDRS[*]})"
else
  {
    echo "# The API server's source address ranges (gen-webhook-certs.sh --apiserver-cidr)."
    echo "# A new --apiserver-cidr replaces them."
    printf '%s\n' "${CIDRS[@]}"
  } >apiserver-cidrs
  log "apiserver-cidrs: ${CIDRS[*]}"
fi
# Broad ranges admit pods too on most CNIs: say so when they are given.
if [ "$CIDR_SOURCE" != kept ]; then
  for c in "${CIDRS[@]}"; do
    p=${c#*/}
    [[ -z ${PRIVATE_USED:-} || ",$PRIVATE_RANGES," != *",$c,"* ]] || continue
    if { [[ $c != *:* ]] && ((p < 16)); } || { [[ $c == *:* ]] && ((p < 48)); }; then
      log "warning: $c is a broad range: on most CNIs pods in it can reach the webhook port too; prefer the control plane's own addresses (and --client-ca, README.md \"Authenticating the API server\")"
    fi
  done
  [ -z "${PRIVATE_USED:-}" ] || log "note: 'private' is for local/dev clusters only: it admits most pod networks too"
fi

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

# make_ca NAME COMMON_NAME: NAME.key and NAME.crt (10 years), unless both
# exist.
make_ca() {
  local name=$1 cn=$2
  if [ -s "$name.crt" ] && [ -s "$name.key" ]; then
    log "$name.crt: kept"
    return
  fi
  new_key "$name.key"
  cat >"$WORK/$name.cnf" <<EOF
[req]
distinguished_name = dn
x509_extensions = ca
prompt = no
[dn]
CN = $cn $(openssl rand -hex 4)
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  openssl req -x509 -new -config "$WORK/$name.cnf" -key "$name.key" -sha256 -days 3650 \
    -set_serial "0x$(openssl rand -hex 16)" -out "$name.crt"
  log "$name.crt: new CA"
}

# issue CA TRUST NAME COMMON_NAME EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
# NAME.{key,crt}, issued by CA.{key,crt}; kept while it verifies against the
# bundle TRUST, its names are unchanged and it has 30 days left.
issue() {
  local ca=$1 trust=$2 name=$3 cn=$4 eku=$5 san=${6:-} why=""
  if ((RENEW)); then why="--renew"
  elif [ ! -s "$name.crt" ] || [ ! -s "$name.key" ]; then why="new"
  elif [ "$(cat "$name.names" 2>/dev/null)" != "$eku $san" ]; then why="names changed"
  elif ! openssl verify -CAfile "$trust" "$name.crt" >/dev/null 2>&1; then why="not issued by $trust"
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
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  [ -z "$san" ] || echo "subjectAltName = $san" >>"$WORK/$name.cnf"
  openssl req -new -config "$WORK/$name.cnf" -key "$name.key" -out "$WORK/$name.csr"
  openssl x509 -req -in "$WORK/$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -sha256 -days "$DAYS" \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$WORK/$name.cnf" -extensions leaf \
    -out "$name.crt" 2>/dev/null
  printf '%s' "$eku $san" >"$name.names"
  log "$name.crt: issued by $ca.crt ($why), $DAYS days"
}

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
  make_ca ca "Portcullis CA"
  cat ca.crt >ca-bundle.crt
  [ ! -s ca-previous.crt ] || cat ca-previous.crt >>ca-bundle.crt

  # ---- leaf certificates -------------------------------------------------
  issue ca ca-bundle.crt gateway "$GATEWAY_SVC.$NS.svc" serverAuth "$(service_names "$GATEWAY_SVC")"
  issue ca ca-bundle.crt gateway-client "$GATEWAY_SVC-client" clientAuth "$(service_names "$GATEWAY_SVC")"
  issue ca ca-bundle.crt verifier "$VERIFIER_SVC.$NS.svc" serverAuth "$(service_names "$VERIFIER_SVC")"
  issue ca ca-bundle.crt redis "$REDIS_SVC.$NS.svc" serverAuth \
    "$(service_names "$REDIS_SVC"),$(service_names "$REDIS_REPLICA_SVC"),DNS:localhost,IP:127.0.0.1"
fi

# ---- the API server's client certificate (every mode) --------------------
# Its own CA: the gateways' --client-ca must admit the API server only, not
# the pods holding certificates from ca.crt.
make_ca apiserver-client-ca "Portcullis API server client CA"
cat apiserver-client-ca.crt >apiserver-client-ca-bundle.crt
if [ -s apiserver-client-ca-previous.crt ]; then
  cat apiserver-client-ca-previous.crt >>apiserver-client-ca-bundle.crt
  log "apiserver-client-ca-previous.crt: still trusted by the gateways (remove it once every API server uses the new kubeconfig)"
fi
# Kept only while issued by the current CA itself, so a replaced CA gets a
# new client certificate in the same run.
issue apiserver-client-ca apiserver-client-ca.crt apiserver-client portcullis-apiserver-client clientAuth

b64() { openssl base64 -A -in "$1"; }
KUBECONFIG_OLD=$(cat apiserver/webhook-kubeconfig.yaml 2>/dev/null || true)
cat >apiserver/webhook-kubeconfig.yaml <<EOF
# Generated by deploy/gen-webhook-certs.sh: the client certificate the API
# server presents to the Portcullis webhooks. Holds a private key. Install as
# $CONTROL_PLANE_DIR/webhook-kubeconfig.yaml on every control-plane node
# (deploy/kubernetes/README.md, "Authenticating the API server"). If the API
# server already has a webhook kubeconfig, add this user to it instead: the
# admission plugins read one kubeconfig for all webhooks.
apiVersion: v1
kind: Config
users:
  # The webhook Service's DNS name: what the API server looks the user up by.
  - name: $APISERVER_USER
    user:
      client-certificate-data: $(b64 apiserver-client.crt)
      client-key-data: $(b64 apiserver-client.key)
EOF
if [ -z "$KUBECONFIG_OLD" ]; then
  log "apiserver/webhook-kubeconfig.yaml: written; install it on the control plane"
elif [ "$KUBECONFIG_OLD" != "$(cat apiserver/webhook-kubeconfig.yaml)" ]; then
  log "apiserver/webhook-kubeconfig.yaml: CHANGED: install it on every control-plane node again and restart the API servers"
else
  log "apiserver/webhook-kubeconfig.yaml: unchanged"
fi
cat >apiserver/admission-config.yaml <<EOF
# Generated by deploy/gen-webhook-certs.sh: install as
# $CONTROL_PLANE_DIR/admission-config.yaml on every control-plane node and
# start kube-apiserver with
#   --admission-control-config-file=$CONTROL_PLANE_DIR/admission-config.yaml
# An API server takes one such file: if it already has one, add the
# kubeConfigFile to its ValidatingAdmissionWebhook and MutatingAdmissionWebhook
# entries instead (deploy/kubernetes/README.md, "Authenticating the API
# server").
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ValidatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $CONTROL_PLANE_DIR/webhook-kubeconfig.yaml
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $CONTROL_PLANE_DIR/webhook-kubeconfig.yaml
EOF
log "apiserver/admission-config.yaml: written"

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
  # The CA of the API server's client certificate (gateway --client-ca).
  - name: portcullis-gateway-client-ca
    namespace: $NS
    files:
      - ca.crt=apiserver-client-ca-bundle.crt
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
  cat <<EOF
# Only the API server's address ranges (--apiserver-cidr) reach the webhook
# port. The \`test\` op makes sure the rule replaced is the one for port $WEBHOOK_PORT.
patches:
  - target:
      kind: NetworkPolicy
      name: $APISERVER_POLICY
    patch: |-
      - op: test
        path: /spec/ingress/0/ports/0/port
        value: $WEBHOOK_PORT
      - op: replace
        path: /spec/ingress/0/from
        value:
EOF
  for c in "${CIDRS[@]}"; do
    printf '          - ipBlock:\n              cidr: "%s"\n' "$c"
  done
} >kustomization.yaml
log "kustomization.yaml: written"

# Kustomize reads the files with the user's permissions; keys stay 0600.
find . -type f -exec chmod 600 {} +
echo "Include it in $OVERLAY/kustomization.yaml with 'components: [secrets]', then: kubectl apply -k $OVERLAY"
echo "With --client-ca on the gateways (overlays/production), the API servers need $OUT/apiserver/ first:"
echo "see deploy/kubernetes/README.md, \"Authenticating the API server\"."
