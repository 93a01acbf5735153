#!/usr/bin/env bash
# Set up everything the Python side needs, idempotently, from an empty machine:
#   - a virtualenv at .venv with kubetl installed (editable) plus test deps
#   - with --postgres: Debian's PostgreSQL server binaries (the tests start
#     their own throwaway server from them; no system service is used)
# Downloads are cached under ~/.cache/kubetl (pip's cache lives there).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${KUBETL_CACHE:-$HOME/.cache/kubetl}"
export PIP_CACHE_DIR="$CACHE/pip"
PYTHON="${PYTHON:-python3}"
want_postgres=false
for arg in "$@"; do
  case "$arg" in
    --postgres) want_postgres=true ;;
    *) echo "usage: hack/setup.sh [--postgres]" >&2; exit 2 ;;
  esac
done

log() { echo "setup: $*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if $want_postgres && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  # postgresql-15 is the server; the tests run it as the `postgres` user it creates.
  apt_install postgresql
fi

if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.kubetl-installed"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  log "installing kubetl and its dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test,examples]"
  touch "$stamp"
fi
log "ready: $(.venv/bin/etl-job version | sed 's/^/etl-job /')"
