#!/bin/sh
# Start throwaway PostgreSQL and Redis servers on loopback ports for the test suite.
# Usage: scripts/test_services.sh start|stop   (prints the environment to export on start)
set -eu

BASE="${KORETEX_TEST_SERVICES_DIR:-/tmp/koretex-test-services}"
PG_PORT="${KORETEX_TEST_PG_PORT:-55432}"
REDIS_PORT="${KORETEX_TEST_REDIS_PORT:-56379}"

pg_bin() {
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
    done
    echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2
    return 1
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}

start() {
    mkdir -p "$BASE"
    bin="$(pg_bin)"
    if [ "$(id -u)" = 0 ]; then chown postgres "$BASE"; fi
    if [ ! -f "$BASE/pg/PG_VERSION" ]; then
        as_postgres "$bin/initdb -D $BASE/pg -U postgres --auth=trust --no-sync >/dev/null"
    fi
    if ! as_postgres "$bin/pg_ctl -D $BASE/pg status" >/dev/null 2>&1; then
        as_postgres "$bin/pg_ctl -D $BASE/pg -l $BASE/pg.log -w start -o \"-p $PG_PORT -k $BASE -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300\"" >/dev/null
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "redis-server not found (scripts/setup_system.sh installs it)" >&2
        return 1
    fi
    if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
            --daemonize yes --logfile "$BASE/redis.log" >/dev/null
    fi
    echo "KORETEX_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
    echo "KORETEX_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/postgres"
}

stop() {
    bin="$(pg_bin)"
    as_postgres "$bin/pg_ctl -D $BASE/pg -m fast stop" >/dev/null 2>&1 || true
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
