#!/usr/bin/env bash
# A real single-node Kubernetes cluster from plain host processes, like
# Kubernetes' own hack/local-up-cluster.sh, for a machine with no registry:
#
#   hack/cluster.sh up              start it (idempotent); prints the kubeconfig path
#   hack/cluster.sh load IMAGE...   copy local docker images into the cluster (like kind load)
#   hack/cluster.sh status          what runs, and the node
#   hack/cluster.sh down            stop everything it started and delete its state
#
# Components: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy (iptables) and CoreDNS, built from the Go module proxy
# (hack/cluster/build-binaries.sh); containerd, runc and the CNI plugins from
# Debian. The node's address is 10.244.0.1 on a bridge this script creates
# (kubetl0), which is also the pods' CNI bridge: nothing listens on any other
# network. CoreDNS runs as a host process behind the kube-dns Service and
# answers cluster.local only. Storage: StorageClass `standard` (default) with
# pre-created hostPath PersistentVolumes under the state directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

CACHE="${KUBETL_CACHE:-$HOME/.cache/kubetl}"
STATE="${KUBETL_CLUSTER_DIR:-$CACHE/cluster}"
RUN=/run/kubetl
SOCK="$RUN/containerd/containerd.sock"
NODE=kubetl-node
NODE_IP=10.244.0.1
BRIDGE=kubetl0
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
API="https://$NODE_IP:6443"
PAUSE_IMAGE=kubetl.local/pause:3.10
PV_COUNT=20
KUBECONFIG_OUT="$STATE/kubeconfig"

log() { echo "cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

alive() { [[ -f "$STATE/pids/$1.pid" ]] && kill -0 "$(cat "$STATE/pids/$1.pid")" 2>/dev/null; }

start() {  # start NAME COMMAND...: run in the background once, pid file and log kept
  local name=$1; shift
  if alive "$name"; then return; fi
  log "starting $name"
  nohup "$@" >"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$STATE/pids/$name.pid"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  die "$what not ready after ${seconds}s; logs in $STATE/logs"
}

# Write stdin to FILE only when it differs: running components (kube-proxy) exit
# when their configuration file changes under them, even to the same content.
write_file() {
  local tmp="$1.new"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

kubectl_() { "$TOOLS/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@"; }

install_packages() {
  local missing=()
  for pkg in containerd runc containernetworking-plugins iptables conntrack openssl busybox-static gcc libc6-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  log "installing Debian packages: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- certificates and kubeconfigs ------------------------------------------------------------

cert() {  # cert NAME CN [O] [SANS]
  local name=$1 cn=$2 org=${3:-} sans=${4:-} pki="$STATE/pki"
  [[ -f "$pki/$name.crt" ]] && return
  openssl req -new -nodes -newkey rsa:2048 -keyout "$pki/$name.key" -out "$pki/$name.csr" \
    -subj "/CN=$cn${org:+/O=$org}" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$pki/$name.crt" -days 3650 -extfile "$pki/$name.ext" 2>/dev/null
}

kubeconfig() {  # kubeconfig NAME: for the client certificate NAME
  write_file "$STATE/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubetl
  cluster: {server: "$API", certificate-authority: "$STATE/pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$STATE/pki/$1.crt", client-key: "$STATE/pki/$1.key"}
contexts:
- name: kubetl
  context: {cluster: kubetl, user: $1}
current-context: kubetl
EOF
}

pki() {
  mkdir -p "$STATE/pki"
  if [[ ! -f "$STATE/pki/ca.crt" ]]; then
    log "generating a CA and certificates"
    openssl req -x509 -new -nodes -newkey rsa:2048 -keyout "$STATE/pki/ca.key" -out "$STATE/pki/ca.crt" \
      -days 3650 -subj "/CN=kubetl-ca" 2>/dev/null
    openssl genrsa -out "$STATE/pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$STATE/pki/sa.key" -pubout -out "$STATE/pki/sa.pub" 2>/dev/null
  fi
  cert apiserver kube-apiserver "" "IP:$NODE_IP,IP:127.0.0.1,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert admin kubetl-admin system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kubelet "system:node:$NODE" system:nodes "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE"
  cert kube-proxy system:kube-proxy
  cert coredns kubetl-coredns
  for name in admin controller-manager scheduler kubelet kube-proxy coredns; do kubeconfig "$name"; done
  cp "$STATE/admin.kubeconfig" "$KUBECONFIG_OUT"
}

# --- images for the node, made without a registry -------------------------------------------------

node_images() {
  local pause_src="$CACHE/k8s/go/mod/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c"
  if [[ ! -f "$CACHE/images/pause-3.10.tar" ]]; then
    mkdir -p "$CACHE/images"
    [[ -f "$pause_src" ]] || die "pause.c not found at $pause_src (the k8s.io/kubernetes module download)"
    log "building the pause image from Kubernetes' pause.c (static)"
    gcc -Os -static -DVERSION=v3.10-kubetl -o "$STATE/pause" "$pause_src"
    python3 hack/cluster/oci_image.py "$CACHE/images/pause-3.10.tar" "$PAUSE_IMAGE" \
      --file "$STATE/pause:/pause" --entrypoint '["/pause"]' --user 65535:65535
  fi
  if [[ ! -f "$CACHE/images/busybox-2.tar" ]]; then
    local links=()
    for tool in sh cat echo sleep nc nslookup httpd ls mkdir id date env true false grep; do links+=(--link "/bin/busybox:/bin/$tool"); done
    python3 hack/cluster/oci_image.py "$CACHE/images/busybox-2.tar" kubetl.local/busybox:2 \
      --file /bin/busybox:/bin/busybox "${links[@]}" --dir /tmp:1777 --dir /www --cmd '["sh"]'
  fi
  for archive in pause-3.10 busybox-2; do
    ctr -a "$SOCK" -n k8s.io images import --no-unpack=false "$CACHE/images/$archive.tar" >/dev/null
  done
  ctr -a "$SOCK" -n k8s.io images label "$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >/dev/null
}

# --- configuration files ----------------------------------------------------------------------

configs() {
  mkdir -p "$STATE/cni" "$RUN/containerd"
  write_file "$STATE/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM withholds CAP_SYS_RESOURCE, so no process may lower its OOM score
  # (the pause container asks for -998): keep every score >= containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni"
EOF
  # Pods get routes to the pod network and the Service network only, no default
  # route: they reach each other, Services and the node, and nothing beyond.
  write_file "$STATE/cni/10-kubetl.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "kubetl", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$STATE/cni-ipam",
            "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
            "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  write_file "$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$STATE/pki/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: "unix://$SOCK"
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
tlsCertFile: "$STATE/pki/kubelet.crt"
tlsPrivateKeyFile: "$STATE/pki/kubelet.key"
failSwapOn: false
podCIDR: $POD_CIDR
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
  write_file "$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$STATE/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
conntrack: {maxPerCore: 0, min: 0}
oomScoreAdj: 0
EOF
  write_file "$STATE/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig kubetl
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
EOF
}

# Cluster objects the control plane needs from us: DNS, RBAC for CoreDNS, storage.
bootstrap_objects() {
  mkdir -p "$STATE/storage"
  local pvs=""
  for i in $(seq -w 1 "$PV_COUNT"); do
    mkdir -p "$STATE/storage/pv-$i" && chmod 0777 "$STATE/storage/pv-$i"
    pvs+="---
apiVersion: v1
kind: PersistentVolume
metadata: {name: kubetl-pv-$i, labels: {kubetl.io/static: \"true\"}}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  hostPath: {path: \"$STATE/storage/pv-$i\", type: Directory}
"
  done
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubetl:coredns}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kubetl:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kubetl:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kubetl-coredns}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $DNS_IP
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: kubetl.io}
addressType: IPv4
endpoints:
  - addresses: [$NODE_IP]
    conditions: {ready: true}
ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
$pvs
EOF
}

# Released volumes (their claim was deleted) are wiped and offered again, so
# the fixed set of PVs lasts across test runs on a long-lived cluster.
recycle_volumes() {
  local pv
  for pv in $(kubectl_ get pv -l kubetl.io/static -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{" "}{end}'); do
    log "recycling released volume $pv"
    find "$STATE/storage/${pv#kubetl-}" -mindepth 1 -delete
    kubectl_ patch pv "$pv" --type json -p '[{"op": "remove", "path": "/spec/claimRef"}]' >/dev/null
  done
}

# --- commands -------------------------------------------------------------------------------------

up() {
  local started=$SECONDS
  [[ $(id -u) -eq 0 ]] || die "must run as root (it runs a kubelet)"
  install_packages
  BIN="$(hack/cluster/build-binaries.sh)"
  TOOLS="$(hack/tools.sh)"
  K8S_VERSION="$("$BIN/kube-apiserver" --version | awk '{print $2}')"
  mkdir -p "$STATE"/{pids,logs} "$RUN"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    log "creating bridge $BRIDGE ($NODE_IP/24), the node's address and the pods' network"
    ip link add "$BRIDGE" type bridge
    ip addr add "$NODE_IP/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  # Bridged pod traffic passes the FORWARD chain, whose policy dockerd sets to DROP.
  iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null \
    || iptables -A FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  pki
  configs

  start etcd "$BIN/etcd" --name kubetl --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster kubetl=http://127.0.0.1:23800 --listen-metrics-urls http://127.0.0.1:23810
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 \
    --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port=6443 \
    --client-ca-file="$STATE/pki/ca.crt" --tls-cert-file="$STATE/pki/apiserver.crt" --tls-private-key-file="$STATE/pki/apiserver.key" \
    --kubelet-client-certificate="$STATE/pki/apiserver-kubelet-client.crt" --kubelet-client-key="$STATE/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$STATE/pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$STATE/pki/sa.pub" --service-account-signing-key-file="$STATE/pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --allow-privileged=true
  wait_for kube-apiserver 120 kubectl_ get --raw /readyz
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --cluster-signing-cert-file="$STATE/pki/ca.crt" --cluster-signing-key-file="$STATE/pki/ca.key" \
    --root-ca-file="$STATE/pki/ca.crt" --service-account-private-key-file="$STATE/pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR"
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/scheduler.kubeconfig" --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false
  start containerd containerd --config "$STATE/containerd.toml"
  wait_for containerd 60 ctr -a "$SOCK" version
  node_images
  start kubelet "$BIN/kubelet" --config="$STATE/kubelet.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
    --root-dir="$STATE/kubelet" --hostname-override="$NODE" --node-ip="$NODE_IP"
  start kube-proxy "$BIN/kube-proxy" --config="$STATE/kube-proxy.yaml"
  start coredns "$BIN/coredns" -conf "$STATE/Corefile"
  bootstrap_objects
  recycle_volumes
  wait_for "node $NODE" 180 kubectl_ wait --for=condition=Ready "node/$NODE" --timeout=1s
  wait_for "the default ServiceAccount" 60 kubectl_ get serviceaccount default
  log "up in $((SECONDS - started))s; kubeconfig: $KUBECONFIG_OUT"
  echo "$KUBECONFIG_OUT"
}

load() {
  [[ $# -gt 0 ]] || die "usage: hack/cluster.sh load IMAGE..."
  alive containerd || die "the cluster is not up (hack/cluster.sh up)"
  for image in "$@"; do
    log "loading $image"
    docker save "$image" | ctr -a "$SOCK" -n k8s.io images import - >/dev/null
  done
}

status() {
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns; do
    if alive "$name"; then echo "$name: running (pid $(cat "$STATE/pids/$name.pid"))"; else echo "$name: stopped"; fi
  done
  if alive kube-apiserver; then "$(hack/tools.sh)/kubectl" --kubeconfig "$KUBECONFIG_OUT" get nodes -o wide; fi
}

stop_pid() {
  local name=$1
  alive "$name" || return 0
  local pid; pid="$(cat "$STATE/pids/$name.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
}

down() {
  log "stopping the cluster"
  stop_pid kubelet
  if alive containerd; then  # the pods' processes outlive containerd unless ended first
    for task in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$SOCK" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    sleep 1
    for task in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$SOCK" -n k8s.io tasks delete -f "$task" >/dev/null 2>&1 || true
    done
  fi
  for name in coredns kube-proxy containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_pid "$name"; done
  local bin="${KUBETL_CACHE:-$HOME/.cache/kubetl}/k8s"
  local proxy; proxy="$(ls "$bin"/v*/bin/kube-proxy 2>/dev/null | head -n1 || true)"
  [[ -n "$proxy" ]] && "$proxy" --cleanup >/dev/null 2>&1 || true
  # Mounts of pod volumes and container roots under our directories.
  grep -oE " ($STATE|$RUN)[^ ]*" /proc/mounts | sort -r | while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
  for netns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns delete "$netns" 2>/dev/null || true; done
  while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
  rm -rf "$STATE" "$RUN"
  log "down: processes stopped, state removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  load) shift; load "$@" ;;
  status) status ;;
  *) echo "usage: hack/cluster.sh up|down|load IMAGE...|status" >&2; exit 2 ;;
esac
