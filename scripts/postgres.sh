#!/usr/bin/env bash
# A throwaway PostgreSQL cluster from Debian's `postgresql` package, for tests and for trying the
# scaled-out setup: no system service, no default cluster, everything inside DIR.
#   scripts/postgres.sh start DIR PORT   creates (if new) and starts the cluster; prints its URL
#   scripts/postgres.sh stop DIR         stops it (DIR can then be deleted)
# initdb refuses to run as root: as root, the cluster runs as the `postgres` user.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
  start)
    dir=$(realpath -m "$2") port=$3
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -A trust -U signalboard >/dev/null
    fi
    # fsync stays on: the tests check what survives a killed server, not a lost machine, but the
    # figures should be PostgreSQL's real ones.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    echo "postgres://signalboard@127.0.0.1:$port/postgres"
    ;;
  stop)
    dir=$(realpath -m "$2")
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
  *)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
