#!/bin/sh
# The official postgres image's start-up contract, in brief: on an empty PGDATA
# run initdb with POSTGRES_USER and POSTGRES_PASSWORD, create POSTGRES_DB, then
# run postgres listening on every address with password authentication.
# Arguments after `postgres` (or a bare `-c name=value ...`) go to the server, as
# in the official image: `docker run IMAGE postgres -c max_connections=200`.
set -eu
case "${1:-}" in -*) set -- postgres "$@" ;; esac
if [ $# -eq 0 ]; then set -- postgres; fi
if [ "$1" != "postgres" ]; then exec "$@"; fi
shift

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "error: POSTGRES_PASSWORD is not set; it is required (as in the official image)" >&2
  exit 1
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
  pwfile="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w start >/dev/null
  if [ "$POSTGRES_DB" != "postgres" ]; then
    psql -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 -q \
      -c "CREATE DATABASE \"$(printf '%s' "$POSTGRES_DB" | sed 's/"/""/g')\""
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "initialised $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB" >&2
fi
# The caller's options come last, so they override these defaults.
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /var/run/postgresql "$@"
