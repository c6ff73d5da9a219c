#!/usr/bin/env bash
# Durable updates per second through HTTP on PostgreSQL, with one server and with two servers on
# one database (64 connections in all), beside the sled figure from the same run. Each case: a
# fresh store, 1,000 charges, wrk updating them at random; then `verify` checks that the log
# holds every acknowledged update and that the chain is sound.
#   bash benches/postgres_load.sh             # 30 s per case
#   DURATION=5s bash benches/postgres_load.sh
#   CASES="two" bash benches/postgres_load.sh   # some of: sled one two
#   RUST_LOG=chargeledger::store::postgres::writer=debug KEEP_LOGS=DIR bash benches/postgres_load.sh
#                                               # every batch's size and timings, servers' logs kept in DIR
# The PostgreSQL cluster is a throwaway one in a temporary directory, with fsync on (the
# default): an update is acknowledged once PostgreSQL has committed it to disk.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30s}
CONNECTIONS=${CONNECTIONS:-64}
source benches/lib.sh
bench_prepare
work=$(mktemp -d)
chmod 755 "$work"
servers=()
trap 'for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null; done; stop_postgres "$work/pg"; rm -rf "$work"' EXIT
mkdir -p "$work/pg"
start_postgres "$work/pg"
key=sk_test_loadtestkey00000001

# create_charges URL FILE: 1,000 charges, their ids in FILE.
create_charges() {
    for _ in $(seq 1000); do
        curl -s -u $key: "$1/v1/charges" -d amount=1000 -d currency=usd -d source=tok_visa \
            | grep -o '"id":"ch_[A-Za-z0-9]*"' | head -1 | cut -d'"' -f4
    done > "$2"
}

# run_case NAME SERVERS [DATABASE_URL]: start SERVERS servers on one store (the database, else a
# data directory), load them with CONNECTIONS connections split evenly, print the summed rate and
# each server's p99, then check with `verify` that the log holds every acknowledged update.
run_case() {
    local name=$1 count=$2 store_options=()
    [ -n "${3:-}" ] && store_options=(--database-url "$3")
    local case_dir="$work/$name" urls=() loads=() index
    mkdir -p "$case_dir"
    for index in $(seq "$count"); do
        mkdir -p "$case_dir/$index"
        start_server "$case_dir/data" $key "$case_dir/$index" "${store_options[@]}"
        servers+=("$server")
        urls+=("$url")
    done
    create_charges "${urls[0]}" "$case_dir/charges"
    for index in $(seq 0 $((count - 1))); do
        LOAD_CLIENT=$index CHARGELEDGER_KEY=$key CHARGES_FILE="$case_dir/charges" \
            wrk -t1 -c$((CONNECTIONS / count)) -d"$DURATION" --latency -s benches/http_update.lua \
            "${urls[$index]}" > "$case_dir/wrk$index" &
        loads+=($!)
    done
    wait "${loads[@]}"
    cat "$case_dir"/wrk[0-9]* > "$case_dir/wrk"
    local rate p99
    rate=$(awk '/Requests\/sec/ {sum += $2} END {printf "%.0f", sum}' "$case_dir/wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$case_dir/wrk" | paste -sd/ -)
    printf '%-36s %7s updates/s   p99 %s\n' "$name" "$rate" "$p99"
    for server in "${servers[@]}"; do stop_server; done
    servers=()
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS/$name"
        for index in $(seq "$count"); do cp "$case_dir/$index/err" "$KEEP_LOGS/$name/server$index.log"; done
    fi
    check_log_holds_acknowledged "$case_dir/data" 1000 "$case_dir/wrk" creations "${store_options[@]}"
}

echo "durable updates through HTTP, $CONNECTIONS connections in all, $DURATION per case"
CASES=${CASES:-sled one two}
case " $CASES " in *" sled "*) run_case "sled, one server" 1 ;; esac
case " $CASES " in *" one "*) run_case "PostgreSQL, one server" 1 "$database_url" ;; esac
if [[ " $CASES " == *" two "* ]]; then
    psql -q "$database_url" -c "CREATE SCHEMA two_servers"
    run_case "PostgreSQL, two servers on one database" 2 "$database_url options=-csearch_path=two_servers"
fi
