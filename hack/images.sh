#!/usr/bin/env bash
# Local base images, built with no registry: nothing can be pulled here, so
# Debian's own packages are debootstrapped into a root filesystem and imported.
#
#   kubetl.local/python:3.11   Debian bookworm's python3  (the default local base)
#   kubetl.local/python:3.13   Debian trixie's python3    (the "other Python" base)
#   kubetl.local/postgres:15   bookworm's postgresql-15 with the official postgres
#                              image's contract (POSTGRES_USER/PASSWORD/DB, PGDATA)
#   kubetl.local/pgadmin4:9    pgAdmin from the pgadmin4 PyPI package on the 3.11 base,
#                              with dpage/pgadmin4's contract (only on request: ~1 GB)
#
# The python bases carry this host's CA bundle and PIP_CERT, so pip inside a
# build reaches PyPI through this network. Installs docker.io, docker-compose
# (Debian bookworm packages Compose v1 only; the compose file works with v1 and
# the v2 plugin alike) and debootstrap, and starts dockerd if no daemon answers.
# Idempotent; root filesystems are cached as tarballs in ~/.cache/kubetl/images,
# so a lost docker store rebuilds in seconds.
# Usage: hack/images.sh [python-3.11|python-3.13|postgres|pgadmin ...]
#        (default: python-3.11 python-3.13 postgres)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${KUBETL_CACHE:-$HOME/.cache/kubetl}/images"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$CACHE"
log() { echo "images: $*" >&2; }

ensure_docker() {
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker-compose >/dev/null; then
    log "installing docker.io, docker-compose and debootstrap from Debian"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
      docker.io docker-compose debootstrap >/dev/null
  fi
  if docker info >/dev/null 2>&1; then return; fi
  log "starting dockerd (log: $CACHE/dockerd.log)"
  nohup dockerd --pidfile /var/run/kubetl-dockerd.pid >"$CACHE/dockerd.log" 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
  log "dockerd did not start; see $CACHE/dockerd.log"; exit 1
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# rootfs SUITE TARBALL PACKAGES: debootstrap into a tarball, once.
rootfs() {
  local suite=$1 tarball=$2 packages=$3 dir
  [[ -s "$tarball" ]] && return
  dir="$(mktemp -d)"
  log "debootstrap $suite with $packages (a few minutes, once)"
  debootstrap --variant=minbase --include="$packages" "$suite" "$dir" "$MIRROR" >"$CACHE/debootstrap-$suite.log" 2>&1 \
    || { log "debootstrap failed; see $CACHE/debootstrap-$suite.log"; exit 1; }
  # This network's CA bundle, so TLS to PyPI works inside builds.
  cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
  tar -C "$dir" -c . > "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
  rm -rf "$dir"
}

python_base() {
  local version=$1 suite=$2 image="kubetl.local/python:$1"
  have_image "$image" && return
  rootfs "$suite" "$CACHE/python-$version-$suite.tar" python3,python3-venv,ca-certificates
  log "importing $image"
  docker import \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$CACHE/python-$version-$suite.tar" "$image" >/dev/null
}

postgres_image() {
  rootfs bookworm "$CACHE/postgres-15-bookworm.tar" postgresql-15,ca-certificates
  have_image kubetl.local/postgres-rootfs:15 || docker import "$CACHE/postgres-15-bookworm.tar" kubetl.local/postgres-rootfs:15 >/dev/null
  # Always rebuilt (cached layers make it instant) so entrypoint edits land.
  log "building kubetl.local/postgres:15"
  docker build -q -t kubetl.local/postgres:15 hack/images/postgres >/dev/null
}

pgadmin_image() {
  python_base 3.11 bookworm
  # Always rebuilt too; the pip install layer stays cached (a few minutes the first time).
  log "building kubetl.local/pgadmin4:9"
  docker build -q -t kubetl.local/pgadmin4:9 hack/images/pgadmin >/dev/null
}

ensure_docker
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(python-3.11 python-3.13 postgres)
for target in "${targets[@]}"; do
  case "$target" in
    python-3.11) python_base 3.11 bookworm ;;
    python-3.13) python_base 3.13 trixie ;;
    postgres) postgres_image ;;
    pgadmin) pgadmin_image ;;
    *) log "unknown target $target (python-3.11, python-3.13, postgres, pgadmin)"; exit 2 ;;
  esac
done
log "ready: $(docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' 'kubetl.local/*' | tr '\n' ' ')"
