#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL server on loopback for the tests, from Debian's packages.
#   eval "$(scripts/test-postgres.sh start)"   # exports SWITCHBOARD_TEST_POSTGRES_URL
#   scripts/test-postgres.sh stop
set -euo pipefail
port=${SWITCHBOARD_TEST_POSTGRES_PORT:-55432}
dir=${SWITCHBOARD_TEST_POSTGRES_DIR:-/tmp/switchboard-test-postgres}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
  start)
    if [ -z "$bin" ]; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
      else
        echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1
      fi
    fi
    if [ ! -f "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres "$dir"
      as_postgres "$bin/initdb" -D "$dir" --auth=trust --username=postgres -E UTF8 >/dev/null
    fi
    # The server must not keep its caller's descriptors (a test runner waits for its pipes to close).
    for fd in $(ls /proc/$$/fd); do
      [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
    done
    if ! as_postgres "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
        -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    fi
    # One database per test target that uses it, so their schemas never race.
    for db in switchboard_test switchboard_test_server switchboard_test_cluster switchboard_test_review; do
      as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
        as_postgres "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    done
    echo "export SWITCHBOARD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/switchboard_test?sslmode=disable"
    ;;
  stop)
    [ -n "$bin" ] && [ -f "$dir/PG_VERSION" ] && as_postgres "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    ;;
esac
