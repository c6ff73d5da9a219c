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
source benches/lib.sh
bench_prepare
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
key=sk_test_loadtestkey00000001
# SERVER_ARGS: more `serve` options, e.g. "--max-pending-writes 16" for an overload run.
# shellcheck disable=SC2086
start_server "$work/data" $key "$work" ${SERVER_ARGS:-}
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
stop_server
slow=$(grep -c "slow group commit" "$work/err" || true)
echo "group commits slower than 50 ms: $slow"
{ grep "slow group commit" "$work/err" || true; } | sed 's/\x1b\[[0-9;]*m//g' | head -5
if [ -n "${COMMIT_LOG:-}" ]; then
    # RUST_LOG=chargeledger::store::sled::writer=debug logs every group commit; keep them.
    sed 's/\x1b\[[0-9;]*m//g' "$work/err" | grep "group commit" > "$COMMIT_LOG" || true
fi
check_log_holds_acknowledged "$work/data" 1000 "$work/wrk" creations
