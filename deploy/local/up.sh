#!/usr/bin/env bash
# Brings up Portcullis locally: builds the binaries, generates a
# self-signed webhook certificate, starts a local registry (Debian's
# docker-registry on 127.0.0.1:5100) with three tiny images, two of them
# signed by demo keys (deploy/local/demo.py), a verifier (gRPC on
# 127.0.0.1:50051) and a gateway (HTTPS on 127.0.0.1:8443) with the policy
# in deploy/local/policy.yaml plus a cosign rule trusting one demo key for
# the demo registry. It POSTs the static examples and the signature demo
# (a signed Deployment allowed with its tag pinned, an unsigned Pod and a
# Pod signed by an untrusted key denied with their reasons), prints the
# answers, then keeps running until Ctrl-C.
#
# Environment: PORTCULLIS_PROFILE=release for an optimised build;
# GATEWAY_PORT / VERIFIER_PORT / REGISTRY_PORT to move the ports.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
bash scripts/install-deps.sh
export PROTOC=${PROTOC:-/usr/bin/protoc}

PROFILE=${PORTCULLIS_PROFILE:-debug}
GATEWAY_PORT=${GATEWAY_PORT:-8443}
VERIFIER_PORT=${VERIFIER_PORT:-50051}
REGISTRY_PORT=${REGISTRY_PORT:-5100}
if [ "$PROFILE" = release ]; then cargo build --workspace --release; else cargo build --workspace; fi
BIN=$ROOT/target/$PROFILE

STATE=$ROOT/.local/stack
mkdir -p "$STATE"
if [ ! -s "$STATE/webhook.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -subj "/CN=portcullis-gateway" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$STATE/webhook.key" -out "$STATE/webhook.crt" 2>/dev/null
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# The demo registry (fresh each time) and its signed images.
REGISTRY=127.0.0.1:$REGISTRY_PORT
rm -rf "$STATE/registry"
mkdir -p "$STATE/registry"
cat > "$STATE/registry.yml" <<EOY
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $STATE/registry}, delete: {enabled: true}}
http: {addr: $REGISTRY}
EOY
docker-registry serve "$STATE/registry.yml" > "$STATE/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
demo=$("$ROOT/.local/venv/bin/python" deploy/local/demo.py "$REGISTRY" "$STATE")
POLICY=$(echo "$demo" | jq -r .config)

"$BIN/portcullis-verifier" serve --config "$POLICY" --listen "127.0.0.1:$VERIFIER_PORT" \
  2> >(sed 's/^/[verifier] /' >&2) &
pids+=($!)
"$BIN/portcullis-gateway" --listen "127.0.0.1:$GATEWAY_PORT" --tls-cert "$STATE/webhook.crt" --tls-key "$STATE/webhook.key" \
  --verifier "http://127.0.0.1:$VERIFIER_PORT" 2> >(sed 's/^/[gateway] /' >&2) &
pids+=($!)

URL=https://127.0.0.1:$GATEWAY_PORT
# The verifier listens one epoch lease (3 s) after it starts (README, "The
# memo of verifier allows"); the gateway is ready once it has passed a
# health check.
for _ in $(seq 1 300); do
  curl -fsS --cacert "$STATE/webhook.crt" "$URL/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS --cacert "$STATE/webhook.crt" "$URL/readyz" >/dev/null || { echo "gateway did not become ready" >&2; exit 1; }

show() {
  echo
  echo "== POST $URL/mutate  <- $1"
  curl -sS --cacert "$STATE/webhook.crt" -H 'Content-Type: application/json' \
    --data "@$1" "$URL/mutate" | jq .
}
show deploy/local/examples/allowed-deployment.json
show deploy/local/examples/denied-pod.json
echo
echo "== The signature demo (registry $REGISTRY):"
show "$(echo "$demo" | jq -r '.reviews["signed-deployment"]')"
echo "   ^ signed by alice, whom the policy trusts: allowed, the tag pinned to the verified digest (base64 JSON Patch above:)"
curl -sS --cacert "$STATE/webhook.crt" -H 'Content-Type: application/json' \
  --data "@$(echo "$demo" | jq -r '.reviews["signed-deployment"]')" "$URL/mutate" | jq -r .response.patch | base64 -d | jq .
show "$(echo "$demo" | jq -r '.reviews["unsigned-pod"]')"
show "$(echo "$demo" | jq -r '.reviews["untrusted-pod"]')"
cat <<EOT

Portcullis is running:
  gateway   $URL  (POST /mutate, /validate; GET /healthz, /readyz, /metrics)
  verifier  127.0.0.1:$VERIFIER_PORT (gRPC), config $POLICY
  registry  http://$REGISTRY (demo/signed, demo/untrusted, demo/unsigned)
  CA        $STATE/webhook.crt
Try: curl --cacert $STATE/webhook.crt -H 'Content-Type: application/json' --data @deploy/local/examples/denied-pod.json $URL/validate
Press Ctrl-C to stop.
EOT
wait
