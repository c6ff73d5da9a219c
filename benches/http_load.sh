#!/usr/bin/env bash
# Durable updates per second through HTTP: a release server on a fresh data directory, 1,000
# charges, then wrk with 64 connections updating them; prints wrk's figures, the server's
# resident memory, and checks that every 2xx answer appended exactly one event.
#   bash benches/http_load.sh            # 30 s (the figures in README)
#   DURATION=5s bash benches/http_load.sh
#   CHARGELEDGER_BIN=/path/to/chargeledger bash benches/http_load.sh   # another build, not rebuilt
#   RUST_LOG=chargeledger::store::sled::writer=debug COMMIT_LOG=FILE bash benches/http_load.sh
#                                        # every group commit's size and timings, kept in FILE
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30s}
CONNECTIONS=${CONNECTIONS:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
if [ -z "${CHARGELEDGER_BIN:-}" ]; then
    cargo build --release --quiet
    CHARGELEDGER_BIN=./target/release/chargeledger
fi
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
key=sk_test_loadtestkey00000001
# SERVER_ARGS: more `serve` options, e.g. "--max-pending-writes 16" for an overload run.
# shellcheck disable=SC2086
RUST_LOG=${RUST_LOG:-info} "$CHARGELEDGER_BIN" serve --addr 127.0.0.1:0 --data "$work/data" --api-key $key ${SERVER_ARGS:-} \
    > "$work/out" 2> "$work/err" &
server=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/out")
for n in $(seq 1000); do
    curl -s -u $key: "$url/v1/charges" -d amount=1000 -d currency=usd -d source=tok_visa \
        | grep -o '"id":"ch_[A-Za-z0-9]*"' | head -1 | cut -d'"' -f4
done > "$work/charges"
rss_before=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
CHARGELEDGER_KEY=$key CHARGES_FILE="$work/charges" \
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/http_update.lua "$url" | tee "$work/wrk"
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
rss_peak=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
echo "server RSS: ${rss_before} kB idle with 1,000 charges, ${rss_after} kB after the run, peak ${rss_peak} kB"
kill -TERM $server
while kill -0 $server 2>/dev/null; do sleep 0.1; done
slow=$(grep -c "slow group commit" "$work/err" || true)
echo "group commits slower than 50 ms: $slow"
{ grep "slow group commit" "$work/err" || true; } | sed 's/\x1b\[[0-9;]*m//g' | head -5
if [ -n "${COMMIT_LOG:-}" ]; then
    # RUST_LOG=chargeledger::store::sled::writer=debug logs every group commit; keep them.
    sed 's/\x1b\[[0-9;]*m//g' "$work/err" | grep "group commit" > "$COMMIT_LOG" || true
fi
events=$(RUST_LOG=warn "$CHARGELEDGER_BIN" verify --data "$work/data" --json | grep -o '"events": *[0-9]*' | grep -o '[0-9]*$')
answered=$(awk '/requests in/ {print $1}' "$work/wrk")
non_2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk"); non_2xx=${non_2xx:-0}
# wrk stops counting at the deadline, so a few requests it abandoned may also have been applied.
echo "events in the log: $events = 1000 creations + $((events - 1000)) updates; wrk counted $answered answers, $non_2xx non-2xx"
if [ $((events - 1000)) -lt $((answered - non_2xx)) ]; then
    echo "FAIL: fewer updates in the log than acknowledged" >&2
    exit 1
fi
