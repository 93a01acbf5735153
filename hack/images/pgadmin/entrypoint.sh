#!/bin/sh
# dpage/pgadmin4's start-up, in brief: on a fresh data directory create the login
# from PGADMIN_DEFAULT_EMAIL / PGADMIN_DEFAULT_PASSWORD and load the servers from
# PGADMIN_SERVER_JSON_FILE for it; then serve pgAdmin with gunicorn.
set -eu
: "${PGADMIN_SERVER_JSON_FILE:=/pgadmin4/servers.json}"
if [ ! -f /var/lib/pgadmin/pgadmin4.db ]; then
  if [ -z "${PGADMIN_DEFAULT_EMAIL:-}" ] || [ -z "${PGADMIN_DEFAULT_PASSWORD:-}" ]; then
    echo "error: PGADMIN_DEFAULT_EMAIL and PGADMIN_DEFAULT_PASSWORD must be set (as in dpage/pgadmin4)" >&2
    exit 1
  fi
  PGADMIN_SETUP_EMAIL="$PGADMIN_DEFAULT_EMAIL" PGADMIN_SETUP_PASSWORD="$PGADMIN_DEFAULT_PASSWORD" \
    python3 /pgadmin4/setup.py setup-db >/dev/null
  if [ -f "$PGADMIN_SERVER_JSON_FILE" ]; then
    python3 /pgadmin4/setup.py load-servers "$PGADMIN_SERVER_JSON_FILE" --user "$PGADMIN_DEFAULT_EMAIL"
  fi
fi
exec gunicorn --bind "${PGADMIN_LISTEN_ADDRESS:-0.0.0.0}:${PGADMIN_LISTEN_PORT:-80}" -w 1 --threads "${GUNICORN_THREADS:-25}" \
  --access-logfile - --chdir /pgadmin4 pgAdmin4:app
