#!/usr/bin/env bash
# Build pinned Kubernetes server components, etcd and CoreDNS from the Go
# module proxy (no binary downloads exist here), cached by version under
# ~/.cache/kubetl/k8s/<version>/bin. Prints that directory.
#
# k8s.io/kubernetes' own go.mod points its k8s.io/* staging modules at
# ./staging; a throwaway module that requires k8s.io/kubernetes and replaces
# each of them with its published v0.<minor> release builds cmd/<name> with
# plain `go build`. Versions are stamped with -ldflags, or components report
# v0.0.0 and version checks (a chart's kubeVersion) fail.
# Usage: hack/cluster/build-binaries.sh [component...]   (default: all)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.33.13}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.1}"
CACHE="${KUBETL_CACHE:-$HOME/.cache/kubetl}/k8s"
BIN="$CACHE/$K8S_VERSION/bin"
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
log() { echo "build-binaries: $*" >&2; }

components=("$@")
[[ ${#components[@]} -eq 0 ]] && components=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns)
mkdir -p "$BIN"
# One build at a time per cache: test fixtures and `cluster.sh up` may ask together.
exec 9>"$CACHE/.build.lock"
flock 9

k8s_module() {
  local dir="$CACHE/src-$K8S_VERSION"
  if [[ ! -f "$dir/go.mod" ]]; then
    mkdir -p "$dir" && cd "$dir"
    log "resolving k8s.io/kubernetes $K8S_VERSION from the module proxy"
    local gomod minor
    gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    minor="v0.${K8S_VERSION#v1.}"
    {
      echo "module kubetl.local/k8sbuild"
      echo
      echo "go 1.24"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      grep -oE '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$minor" '{print "replace " $1 " => " $1 " " v}'
    } > go.mod.tmp && mv go.mod.tmp go.mod
  fi
  echo "$dir"
}

k8s_ldflags() {
  local minor built flags="-s -w"
  minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  built="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$built"
  done
  echo "$flags"
}

build_in() {  # build_in DIR PACKAGE OUTPUT LDFLAGS
  local dir=$1 pkg=$2 out=$3 ldflags=$4 started=$SECONDS
  log "building $(basename "$out") ($pkg)"
  (cd "$dir" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg") && mv "$out.tmp" "$out"
  log "built $(basename "$out") in $((SECONDS - started))s"
}

small_module() {  # small_module NAME MODULE VERSION
  local dir="$CACHE/src-$1-$3"
  mkdir -p "$dir"
  [[ -f "$dir/go.mod" ]] || printf 'module kubetl.local/%sbuild\n\ngo 1.24\n\nrequire %s %s\n' "$1" "$2" "$3" > "$dir/go.mod"
  echo "$dir"
}

for component in "${components[@]}"; do
  [[ -x "$BIN/$component" ]] && continue
  case "$component" in
    etcd)
      build_in "$(small_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION")" go.etcd.io/etcd/server/v3 "$BIN/etcd" "-s -w" ;;
    coredns)
      build_in "$(small_module coredns github.com/coredns/coredns "$COREDNS_VERSION")" github.com/coredns/coredns "$BIN/coredns" "-s -w" ;;
    kube-*|kubelet)
      build_in "$(k8s_module)" "k8s.io/kubernetes/cmd/$component" "$BIN/$component" "$(k8s_ldflags)" ;;
    *) log "unknown component $component"; exit 2 ;;
  esac
done
echo "$BIN"
