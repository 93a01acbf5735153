#!/usr/bin/env bash
# The whole product on Kubernetes in one command: bring up the local cluster
# (hack/cluster.sh), build the image from the registry-free base images
# (hack/images.sh), load it, `helm upgrade --install` the chart in namespace
# kubetl, run `helm test`, then run the flights pipeline for January 2013 with
# `etlctl run --wait --follow` and show what PostgreSQL holds.
#
# Any other cluster: KUBECONFIG=... KUBETL_IMAGE_LOAD="kind load docker-image" hack/kube-demo.sh
# (official images then: python:3.11-slim to build on, postgres:16 pulled by the cluster).
# Remove it with: helm -n kubetl uninstall kubetl; hack/cluster.sh down
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "kube-demo: $*" >&2; }

hack/setup.sh
export PATH="$(hack/tools.sh):$PWD/.venv/bin:$PATH"
NS=kubetl
if [[ -n "${KUBETL_IMAGE_LOAD:-}" ]]; then
  base=python:3.11-slim
  postgres=(--set postgresql.image.repository=postgres --set-string postgresql.image.tag=16)
else
  hack/images.sh
  KUBECONFIG="$(hack/cluster.sh up)"
  export KUBECONFIG
  KUBETL_IMAGE_LOAD="hack/cluster.sh load"
  base=kubetl.local/python:3.11
  postgres=(--set postgresql.image.repository=kubetl.local/postgres --set-string postgresql.image.tag=15
            --set postgresql.image.pullPolicy=Never)
  $KUBETL_IMAGE_LOAD kubetl.local/postgres:15
fi

log "building the image on $base"
id="$(docker build -q --build-arg "BASE_IMAGE=$base" -t kubetl:dev .)"
id="${id#sha256:}"
TAG="kubetl:dev-${id:0:12}"  # named by content: a new build gets a new tag, hence a rollout
docker tag kubetl:dev "$TAG"
$KUBETL_IMAGE_LOAD "$TAG"

kubectl get namespace "$NS" >/dev/null 2>&1 || {
  kubectl create namespace "$NS"
  kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted
}
log "installing the chart (release kubetl in namespace $NS)"
helm upgrade --install kubetl charts/kubetl -n "$NS" --wait --timeout 5m \
  --set image.repository="${TAG%%:*}" --set-string image.tag="${TAG#*:}" --set image.pullPolicy=IfNotPresent "${postgres[@]}" >/dev/null
helm test kubetl -n "$NS" --timeout 3m | sed -n '/^TEST SUITE/,$p'

log "etlctl run flights --interval 2013-01-01/2013-02-01 --wait --follow"
etlctl -n "$NS" run flights --interval 2013-01-01/2013-02-01 --wait --follow
etlctl -n "$NS" history flights

log "what PostgreSQL holds"
kubectl -n "$NS" exec statefulset/kubetl-postgresql -c postgresql -- psql -U kubetl -d kubetl -c \
  "SELECT id, pipeline, interval_start, status, rows_read, rows_loaded, rows_rejected FROM etl_runs ORDER BY id DESC LIMIT 5"
