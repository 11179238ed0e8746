# Sourced by scripts/test: a throw-away PostgreSQL cluster for the tests' PostgreSQL variants.
#
# start_test_postgres: installs Debian's `postgresql` package when no initdb is found (as root, with apt-get),
# makes a cluster with initdb in a temp folder (its unix socket there too), starts it with pg_ctl on a free
# port of 127.0.0.1 and exports SECONDROW_TEST_POSTGRES_URL=postgres://secondrow:PASSWORD@127.0.0.1:PORT/postgres.
# Tests create a database of their own per test under that URL. stop_test_postgres stops the cluster and
# removes the folder (scripts/test calls it from its EXIT trap). Returns non-zero when PostgreSQL cannot start.
#
# initdb refuses to run as root: as root the cluster belongs to the `postgres` user (made by the package)
# and every server command runs through runuser.

pg_dir=""
pg_bin=""
pg_user=""

pg_find_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

pg_as_owner() {
    if [ -n "$pg_user" ]; then
        runuser -u "$pg_user" -- "$@"
    else
        "$@"
    fi
}

pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_test_postgres() {
    if ! pg_bin="$(pg_find_bin)"; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "== installing PostgreSQL (Debian's postgresql package)"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        fi
        if ! pg_bin="$(pg_find_bin)"; then
            echo "PostgreSQL is not installed (no initdb/pg_ctl): install Debian's postgresql package," \
                "or set SECONDROW_TEST_POSTGRES_URL to a server the tests may create databases on" >&2
            return 1
        fi
    fi
    if [ "$(id -u)" = 0 ]; then
        pg_user=postgres
        if ! id "$pg_user" >/dev/null 2>&1; then
            echo "running as root, but there is no \`postgres\` user to own the test cluster" >&2
            return 1
        fi
    fi
    # In /tmp when the owner is `postgres`: it must reach the folder (TMPDIR may be private to root).
    local base="${TMPDIR:-/tmp}"
    [ -z "$pg_user" ] || base=/tmp
    pg_dir="$(mktemp -d "$base/secondrow-pg.XXXXXX")"
    chmod 755 "$pg_dir"
    local password
    password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    printf '%s\n' "$password" > "$pg_dir/pwfile"
    mkdir "$pg_dir/data" "$pg_dir/socket"
    [ -z "$pg_user" ] || chown -R "$pg_user" "$pg_dir"
    echo "== starting a throw-away PostgreSQL ($pg_bin) in $pg_dir"
    if ! pg_as_owner "$pg_bin/initdb" -D "$pg_dir/data" -U secondrow --pwfile="$pg_dir/pwfile" \
        --auth-host=scram-sha-256 --auth-local=scram-sha-256 --no-locale --encoding=UTF8 >"$pg_dir/initdb.log" 2>&1; then
        cat "$pg_dir/initdb.log" >&2
        return 1
    fi
    rm -f "$pg_dir/pwfile"
    local port attempt
    for attempt in 1 2 3; do
        port="$(pg_free_port)"
        # Durability settings off: the cluster is thrown away; many connections: tests run in parallel.
        if pg_as_owner "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 start -o \
            "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$pg_dir/socket \
             -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null; then
            export SECONDROW_TEST_POSTGRES_URL="postgres://secondrow:$password@127.0.0.1:$port/postgres"
            echo "== PostgreSQL listening on 127.0.0.1:$port"
            return 0
        fi
        echo "PostgreSQL did not start on port $port (attempt $attempt):" >&2
        tail -n 20 "$pg_dir/server.log" >&2 || true
    done
    return 1
}

stop_test_postgres() {
    if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
        if [ -f "$pg_dir/data/postmaster.pid" ]; then
            pg_as_owner "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$pg_dir"
    fi
    pg_dir=""
}
