# Shared by the shell benchmarks (sourced, not run): tools, the server under test, and the check
# that every acknowledged update is in its log.

# wrk and curl from Debian's packages if missing; CHARGELEDGER_BIN built unless given.
bench_prepare() {
    command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
    command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
    if [ -z "${CHARGELEDGER_BIN:-}" ]; then
        cargo build --release --quiet
        CHARGELEDGER_BIN=./target/release/chargeledger
    fi
}

# start_server DATA_DIR API_KEY WORK_DIR [more serve options...]: sets $server (its pid) and $url.
# Its standard output and error go to WORK_DIR/out and WORK_DIR/err.
start_server() {
    local data=$1 key=$2 work=$3
    shift 3
    RUST_LOG=${RUST_LOG:-info} "$CHARGELEDGER_BIN" serve --addr 127.0.0.1:0 --data "$data" \
        --api-key "$key" "$@" > "$work/out" 2> "$work/err" &
    server=$!
    # Opening a large store takes a while: wait up to a minute for it to listen.
    for _ in $(seq 600); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
    url=$(grep -o 'http://[0-9.:]*' "$work/out")
}

# Stop $server (if any): SIGTERM, then SIGKILL after 5 s. Acknowledged writes are durable
# either way; a stuck peer must not hang the run.
stop_server() {
    if [ -n "${server:-}" ]; then
        kill -TERM "$server" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=
    fi
}

# check_log_holds_acknowledged DATA_DIR EVENTS_BEFORE WRK_OUTPUT DESCRIPTION [VERIFY_OPTIONS...]:
# fail unless the log holds at least one update per 2xx answer wrk counted (WRK_OUTPUT may be
# several wrk outputs, concatenated). wrk stops counting at the deadline, so a few requests it
# abandoned may also have been applied.
check_log_holds_acknowledged() {
    local data=$1 before=$2 wrk_output=$3 description=$4 logged answered non_2xx
    shift 4
    logged=$(RUST_LOG=warn "$CHARGELEDGER_BIN" verify --data "$data" "$@" --json \
        | grep -o '"events": *[0-9]*' | grep -o '[0-9]*$')
    answered=$(awk '/requests in/ {sum += $1} END {print sum + 0}' "$wrk_output")
    non_2xx=$(awk '/Non-2xx/ {sum += $NF} END {print sum + 0}' "$wrk_output")
    echo "events in the log: $logged = $before $description + $((logged - before)) updates; wrk counted $answered answers, $non_2xx non-2xx"
    if [ $((logged - before)) -lt $((answered - non_2xx)) ]; then
        echo "FAIL: fewer updates in the log than acknowledged" >&2
        exit 1
    fi
}

# start_postgres DIR: a throwaway PostgreSQL cluster in DIR (initdb, pg_ctl as the postgres user
# when run as root), on a Unix socket in DIR only; sets $database_url. Installs Debian's
# postgresql package if the server binaries are missing. stop_postgres DIR stops it.
start_postgres() {
    local dir=$1 bin
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    local as_owner=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
        as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    fi
    "${as_owner[@]}" "$bin/initdb" -A trust -U chargeledger --no-instructions -D "$dir/pgdata" > "$dir/initdb.log"
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/pgdata" -l "$dir/postgres.log" -w \
        -o "-k $dir -c listen_addresses= -c max_connections=200" start > /dev/null
    database_url="host=$dir user=chargeledger dbname=postgres"
}

stop_postgres() {
    local dir=$1 bin
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    local as_owner=()
    if [ "$(id -u)" = 0 ]; then as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --); fi
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/pgdata" -m fast -w stop > /dev/null 2>&1 || true
}
