#!/usr/bin/env bash
# The whole test suite, from an empty machine: installs what it needs, then runs
# every suite in one pytest session, fastest first. Suites that need Docker or
# the local Kubernetes cluster bring those up from their own fixtures
# (hack/images.sh, hack/cluster/build-binaries.sh), so this one command is all CI runs.
# Extra arguments go to pytest (e.g. hack/test.sh -k sigkill).
set -euo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh --postgres

suites=()
for suite in tests/lint tests/unit tests/integration tests/chart tests/controller tests/docker tests/cluster tests/e2e; do
  [[ -d "$suite" ]] && suites+=("$suite")
done
exec .venv/bin/python -m pytest "${suites[@]}" "$@"
