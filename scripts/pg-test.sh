#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for bankdirect's store tests.
#
#   scripts/pg-test.sh start    install PostgreSQL if missing, create and start the cluster,
#                               create role and database `bankdirect` (all idempotent)
#   scripts/pg-test.sh stop     stop the cluster (no-op when it is not running)
#   scripts/pg-test.sh status   exit 0 when running, 3 when not
#   scripts/pg-test.sh env      print `export BANKDIRECT_TEST_PG_URL=...`; use with eval
#
# Settings (environment):
#   BANKDIRECT_PG_DIR   cluster directory, default /var/tmp/bankdirect-pg. Not under $HOME:
#                       the server runs as the `postgres` user, which cannot traverse /root,
#                       and loosening /root's permissions is not this script's business.
#                       Layout: data/ (PGDATA), run/ (unix socket), server.log.
#   BANKDIRECT_PG_PORT  TCP port on 127.0.0.1, default 54329 (away from a system cluster's 5432).
#
# Security: authentication is `trust` for the unix socket (inside the cluster directory)
# and 127.0.0.1 only, and the role is a superuser. This is a test cluster; never point
# a real deployment at it.
set -Eeuo pipefail

PG_DIR="${BANKDIRECT_PG_DIR:-/var/tmp/bankdirect-pg}"
PG_PORT="${BANKDIRECT_PG_PORT:-54329}"
DATA_DIR="$PG_DIR/data"
SOCKET_DIR="$PG_DIR/run"
LOG_FILE="$PG_DIR/server.log"
READY_TIMEOUT_S=30
ROLE=bankdirect
DATABASE=bankdirect

say() { printf 'pg-test: %s\n' "$*" >&2; }

die() {
    say "error: $*"
    if [[ -f "$LOG_FILE" ]]; then
        say "last lines of $LOG_FILE:"
        tail -n 40 "$LOG_FILE" >&2 || true
    fi
    exit 1
}

trap 'die "command failed at line $LINENO: $BASH_COMMAND"' ERR

# Runs a command as the `postgres` OS user: initdb and pg_ctl refuse to run as root.
as_postgres() {
    if [[ "$(id -un)" == postgres ]]; then
        "$@"
    elif [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n -u postgres -- "$@"
    else
        die "need root, sudo or the postgres user to run $1"
    fi
}

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n -- "$@"
    else
        die "need root or sudo to run $1"
    fi
}

# The binaries of the cluster's own major version when it exists, else the newest installed.
find_bin_dir() {
    if [[ -f "$DATA_DIR/PG_VERSION" ]]; then
        local version
        version="$(cat "$DATA_DIR/PG_VERSION")"
        if [[ -x "/usr/lib/postgresql/$version/bin/pg_ctl" ]]; then
            printf '%s\n' "/usr/lib/postgresql/$version/bin"
            return 0
        fi
        die "cluster in $DATA_DIR is PostgreSQL $version but /usr/lib/postgresql/$version/bin/pg_ctl is missing"
    fi
    local dir newest=""
    # Version-sorted so that 16 comes after 9; an unmatched glob fails the -x test.
    while IFS= read -r dir; do
        if [[ -x "$dir/pg_ctl" ]]; then
            newest="$dir"
        fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
    printf '%s\n' "$newest"
}

install_postgres() {
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available; install PostgreSQL (server) yourself"
    say "PostgreSQL server binaries not found; installing with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
}

is_running() {
    local bin_dir="$1"
    [[ -f "$DATA_DIR/PG_VERSION" ]] || return 1
    as_postgres "$bin_dir/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1
}

init_cluster() {
    local bin_dir="$1"
    say "creating cluster in $DATA_DIR"
    as_root mkdir -p "$PG_DIR"
    as_root chown postgres:postgres "$PG_DIR"
    as_root chmod 0755 "$PG_DIR"
    as_postgres mkdir -p "$SOCKET_DIR"
    # Reachability check: a parent the postgres user cannot traverse fails here with
    # a clear message instead of inside initdb.
    as_postgres test -w "$PG_DIR" || die "the postgres user cannot write $PG_DIR; choose another BANKDIRECT_PG_DIR"
    as_postgres "$bin_dir/initdb" -D "$DATA_DIR" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=trust >/dev/null
    # Replace the generated rules: trust only the socket and 127.0.0.1, nothing else.
    as_postgres tee "$DATA_DIR/pg_hba.conf" >/dev/null <<'EOF'
# bankdirect test cluster: written by scripts/pg-test.sh
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
}

start() {
    local bin_dir
    bin_dir="$(find_bin_dir)"
    if [[ -z "$bin_dir" ]]; then
        install_postgres
        bin_dir="$(find_bin_dir)"
        [[ -n "$bin_dir" ]] || die "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/pg_ctl exists"
    fi
    if [[ ! -f "$DATA_DIR/PG_VERSION" ]]; then
        init_cluster "$bin_dir"
    fi
    if is_running "$bin_dir"; then
        say "already running (data $DATA_DIR, port $PG_PORT)"
    else
        say "starting PostgreSQL ($bin_dir) on 127.0.0.1:$PG_PORT, data $DATA_DIR, log $LOG_FILE"
        as_postgres touch "$LOG_FILE"
        as_postgres "$bin_dir/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$READY_TIMEOUT_S" \
            -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$SOCKET_DIR" \
            >/dev/null || die "pg_ctl start failed"
    fi
    wait_ready "$bin_dir"
    ensure_role_and_database "$bin_dir"
    say "ready: postgres://$ROLE@127.0.0.1:$PG_PORT/$DATABASE"
}

wait_ready() {
    local bin_dir="$1"
    local waited_s=0
    until "$bin_dir/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do
        if ((waited_s >= READY_TIMEOUT_S)); then
            die "server not accepting connections on 127.0.0.1:$PG_PORT after ${READY_TIMEOUT_S}s"
        fi
        sleep 1
        waited_s=$((waited_s + 1))
    done
}

psql_admin() {
    local bin_dir="$1"
    shift
    "$bin_dir/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres -tA "$@"
}

ensure_role_and_database() {
    local bin_dir="$1"
    if [[ -z "$(psql_admin "$bin_dir" -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" ]]; then
        say "creating role $ROLE"
        psql_admin "$bin_dir" -c "CREATE ROLE $ROLE LOGIN CREATEDB SUPERUSER"
    fi
    if [[ -z "$(psql_admin "$bin_dir" -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" ]]; then
        say "creating database $DATABASE"
        psql_admin "$bin_dir" -c "CREATE DATABASE $DATABASE OWNER $ROLE"
    fi
}

stop() {
    local bin_dir
    bin_dir="$(find_bin_dir)"
    if [[ -z "$bin_dir" ]] || ! is_running "$bin_dir"; then
        say "not running (data $DATA_DIR)"
        return 0
    fi
    say "stopping PostgreSQL (data $DATA_DIR)"
    as_postgres "$bin_dir/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t "$READY_TIMEOUT_S" >/dev/null \
        || die "pg_ctl stop failed"
}

status() {
    local bin_dir
    bin_dir="$(find_bin_dir)"
    if [[ -n "$bin_dir" ]] && is_running "$bin_dir"; then
        say "running (data $DATA_DIR, port $PG_PORT)"
        return 0
    fi
    say "not running (data $DATA_DIR)"
    return 3
}

print_env() {
    printf 'export BANKDIRECT_TEST_PG_URL=postgres://%s@127.0.0.1:%s/%s\n' "$ROLE" "$PG_PORT" "$DATABASE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status)
        trap - ERR
        status
        ;;
    env) print_env ;;
    *)
        say "usage: $0 {start|stop|status|env}"
        exit 2
        ;;
esac
