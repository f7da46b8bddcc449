#!/usr/bin/env bash
# A local Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (fake kubelets), built from the Go modules pinned under
# tools/control-plane/ and started on 127.0.0.1.
#
#   scripts/control-plane.sh build   build the binaries once into a cache outside the repository
#   scripts/control-plane.sh up      build (or reuse), then start everything; prints the env line
#   scripts/control-plane.sh env     prints `export KUBECONFIG=... DEEPSEEK_CONTROL_PLANE=... PATH=...`
#                                    (PATH starts with the cache's bin: its kubectl matches the server)
#   scripts/control-plane.sh down    stops every process `up` started and removes its state
#
# The binaries live in ${XDG_CACHE_HOME:-~/.cache}/deepseek-k8s/control-plane/<versions>/bin;
# the running cluster's state (certificates, tokens, kubeconfig, etcd data, logs, pid files) in
# $CONTROL_PLANE_DIR (default target/control-plane, which git ignores).
#
# Authentication is a static token file: `admin` (system:masters) and one token per
# ServiceAccount in $CONTROL_PLANE_SERVICE_ACCOUNTS (namespace/name, space separated), as the
# token of a pod running under that ServiceAccount would authenticate; the tests run the
# operator with it so that the real RBAC authorizer judges the chart's rules. The token of
# namespace/name is in $CONTROL_PLANE_DIR/tokens/namespace.name.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$REPO/tools/control-plane"
K8S_VERSION=$(sed -n 's/^require k8s.io\/kubernetes \(v[^ ]*\).*/\1/p' "$TOOLS/kubernetes/go.mod")
ETCD_VERSION=$(sed -n 's/^require go.etcd.io\/etcd\/server\/v3 \(v[^ ]*\).*/\1/p' "$TOOLS/etcd/go.mod")
KWOK_VERSION=$(sed -n 's/^require sigs.k8s.io\/kwok \(v[^ ]*\).*/\1/p' "$TOOLS/kwok/go.mod")
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/deepseek-k8s/control-plane/$K8S_VERSION-etcd$ETCD_VERSION-kwok$KWOK_VERSION"
BIN="$CACHE/bin"
STATE="${CONTROL_PLANE_DIR:-$REPO/target/control-plane}"
SERVICE_ACCOUNTS="${CONTROL_PLANE_SERVICE_ACCOUNTS:-deepseek-system/deepseek-operator deepseek-watch/deepseek-operator}"
# kwok Nodes: one per zone, each with GPUs; the zones of examples/multi-zone.yaml.
ZONES="${CONTROL_PLANE_ZONES:-europe-west4-a europe-west4-b europe-west4-c}"
GPUS_PER_NODE="${CONTROL_PLANE_GPUS_PER_NODE:-8}"
BINARIES="etcd kwok kube-apiserver kube-controller-manager kube-scheduler kubectl"
KWOK_STAGES="node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml"

log() { echo "control-plane: $*" >&2; }
kubectl() { "$BIN/kubectl" "$@"; }

built() {
  for b in $BINARIES; do [ -x "$BIN/$b" ] || return 1; done
  for s in $KWOK_STAGES; do [ -f "$CACHE/kwok-stages/$(basename "$s")" ] || return 1; done
}

build() {
  if built; then return 0; fi
  command -v go >/dev/null || { log "Go is needed to build the control plane (https://go.dev/dl)"; exit 1; }
  local start tmp
  start=$(date +%s)
  tmp="$CACHE/bin.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp" "$CACHE/kwok-stages"
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--p=2}"
  log "building etcd $ETCD_VERSION, kwok $KWOK_VERSION and Kubernetes $K8S_VERSION into $BIN (20-30 minutes cold on 2 cores)"
  (cd "$TOOLS/etcd" && go build -trimpath -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  (cd "$TOOLS/kwok" && go build -trimpath -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)
  (cd "$TOOLS/kubernetes" && go build -trimpath -pgo=off \
    -ldflags "-X k8s.io/component-base/version.gitVersion=$K8S_VERSION" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  local kwok_dir
  kwok_dir=$(cd "$TOOLS/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  for s in $KWOK_STAGES; do cp "$kwok_dir/kustomize/stage/$s" "$CACHE/kwok-stages/"; done
  chmod u+w "$CACHE/kwok-stages/"*
  rm -rf "$BIN" && mv "$tmp" "$BIN"
  log "built in $(( $(date +%s) - start ))s"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME COMMAND...: runs in the background, its output in $STATE/logs/NAME.log, its pid
# in $STATE/pids/NAME.pid.
start() {
  local name=$1; shift
  "$@" >"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$STATE/pids/$name.pid"
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${secs}s waiting for $what; logs in $STATE/logs"
      tail -n 20 "$STATE"/logs/*.log >&2 || true
      down
      exit 1
    fi
    sleep 0.2
  done
}

certs() {
  local d="$STATE/pki"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=deepseek-k8s-test-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' >"$d/apiserver.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
  # Service-account token signing key pair.
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

tokens() {
  mkdir -p "$STATE/tokens"
  local admin
  admin=$(openssl rand -hex 16)
  echo "$admin" >"$STATE/tokens/admin"
  echo "$admin,admin,admin,\"system:masters\"" >"$STATE/token-auth.csv"
  local sa ns name token
  for sa in $SERVICE_ACCOUNTS; do
    ns=${sa%%/*} name=${sa#*/}
    token=$(openssl rand -hex 16)
    echo "$token" >"$STATE/tokens/$ns.$name"
    echo "$token,system:serviceaccount:$ns:$name,sa-$ns-$name,\"system:serviceaccounts,system:serviceaccounts:$ns,system:authenticated\"" \
      >>"$STATE/token-auth.csv"
  done
}

kubeconfig() { # kubeconfig FILE TOKEN
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $STATE/pki/ca.crt
users:
- name: admin
  user:
    token: $2
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
EOF
}

nodes() {
  local zone
  for zone in $ZONES; do
    cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: gpu-node-${zone##*-}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: gpu-node-${zone##*-}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node.kubernetes.io/instance-type: gpu-$GPUS_PER_NODE
    # The accelerator label GKE puts on L4 nodes, which examples/multi-zone.yaml selects.
    cloud.google.com/gke-accelerator: nvidia-l4
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: $zone
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$GPUS_PER_NODE"}
  capacity: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$GPUS_PER_NODE"}
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: fake, kubeProxyVersion: fake}
---
EOF
  done
}

up() {
  build
  if [ -f "$STATE/kubeconfig" ] && KUBECONFIG="$STATE/kubeconfig" kubectl get --raw=/readyz >/dev/null 2>&1; then
    log "already running ($STATE)"
    env_line
    return 0
  fi
  down 2>/dev/null || true
  mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/etcd"
  local start etcd_port peer_port
  start=$(date +%s)
  etcd_port=$(free_port) peer_port=$(free_port)
  APISERVER_PORT=$(free_port)
  echo "$APISERVER_PORT" >"$STATE/apiserver.port"
  certs
  tokens
  start etcd "$BIN/etcd" --name=default --data-dir="$STATE/etcd" --unsafe-no-fsync \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="default=http://127.0.0.1:$peer_port" --quota-backend-bytes=4294967296 \
    --snapshot-count=100000 --log-level=warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$STATE/pki/apiserver.crt" --tls-private-key-file="$STATE/pki/apiserver.key" \
    --client-ca-file="$STATE/pki/ca.crt" --token-auth-file="$STATE/token-auth.csv" \
    --authorization-mode=RBAC --allow-privileged=true \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$STATE/pki/sa.pub" --service-account-signing-key-file="$STATE/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none --profiling=false
  kubeconfig "$STATE/kubeconfig" "$(cat "$STATE/tokens/admin")"
  export KUBECONFIG="$STATE/kubeconfig"
  wait_for kube-apiserver 90 kubectl get --raw=/readyz
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$STATE/kubeconfig" \
    --authentication-kubeconfig="$STATE/kubeconfig" --authorization-kubeconfig="$STATE/kubeconfig" \
    --secure-port=0 --leader-elect=false --service-account-private-key-file="$STATE/pki/sa.key" \
    --root-ca-file="$STATE/pki/ca.crt" --service-cluster-ip-range=10.96.0.0/16 --profiling=false \
    --concurrent-gc-syncs=5 --node-monitor-grace-period=60s
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$STATE/kubeconfig" \
    --authentication-kubeconfig="$STATE/kubeconfig" --authorization-kubeconfig="$STATE/kubeconfig" \
    --secure-port=0 --leader-elect=false --profiling=false
  local configs=() s
  for s in $KWOK_STAGES; do configs+=("--config=$CACHE/kwok-stages/$(basename "$s")"); done
  start kwok "$BIN/kwok" --kubeconfig="$STATE/kubeconfig" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip=127.0.0.1 --cidr=127.1.0.0/16 --node-lease-duration-seconds=40 \
    --server-address= --node-port=0 "${configs[@]}"
  nodes | kubectl apply -f - >/dev/null
  wait_for "Ready nodes" 60 kubectl wait --for=condition=Ready node --all --timeout=1s
  # Pods need their namespace's default ServiceAccount, which the controller-manager creates.
  wait_for "the default ServiceAccount" 60 kubectl get serviceaccount default -n default
  log "up in $(( $(date +%s) - start ))s: $(kubectl get nodes --no-headers | wc -l) kwok nodes, logs in $STATE/logs"
  env_line
}

env_line() {
  echo "export KUBECONFIG=$STATE/kubeconfig DEEPSEEK_CONTROL_PLANE=$STATE PATH=$BIN:\$PATH"
}

down() {
  local f pid
  if [ -d "$STATE/pids" ]; then
    # Reverse start order: kwok and the controllers first, etcd last.
    for f in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
      [ -f "$STATE/pids/$f.pid" ] || continue
      pid=$(cat "$STATE/pids/$f.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    done
  fi
  rm -rf "$STATE"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  env)
    [ -f "$STATE/kubeconfig" ] || { log "not running; run '$0 up'"; exit 1; }
    env_line
    ;;
  *)
    echo "usage: $0 build|up|down|env" >&2
    exit 2
    ;;
esac
