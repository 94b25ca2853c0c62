#!/bin/bash
# The entrypoint of the postgres:15 stand-in (test/compose/stand-ins/build.sh). It does, for
# what docker-compose.yml uses, what the official image's docker-entrypoint.sh does:
#   - as root, it makes PGDATA postgres's own and runs itself again as postgres;
#   - on an empty PGDATA it requires POSTGRES_PASSWORD, runs initdb with POSTGRES_USER
#     (default postgres) and that password, listens on every address and asks for the
#     password (scram-sha-256) from every host but the container's own loopback and socket
#     (initdb's trust lines, as in the official image); then it creates POSTGRES_DB (default:
#     the user's name) on a temporary server that listens on its socket only;
#   - it then execs the command, `postgres` by default.
# It does not run /docker-entrypoint-initdb.d scripts (nothing here uses them).
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ]; then
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
  fi

  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
      echo 'Error: Database is uninitialized and superuser password is not specified (set POSTGRES_PASSWORD).' >&2
      exit 1
    fi
    user=${POSTGRES_USER:-postgres}
    database=${POSTGRES_DB:-$user}
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") -D "$PGDATA"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
      pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
      psql -v ON_ERROR_STOP=1 -q --username="$user" --dbname=postgres -v name="$database" <<<'CREATE DATABASE :"name";'
      pg_ctl -D "$PGDATA" -m fast -w stop
    fi
    echo 'PostgreSQL init process complete; ready for start up.'
  fi
fi

exec "$@"
