#!/usr/bin/env bash
# Resident memory of a server holding many charges: a synthetic log of CHARGES charges with 3
# events each (created, then updated twice) is imported with `chargeledger import`, the server
# opens it, and wrk updates charges spread over all of them; prints RSS at rest and after the
# load, and checks that the log holds every acknowledged update.
#   bash benches/memory.sh                      # 1,000,000 charges, 3,000,000 events, 30 s
#   CHARGES=10000 DURATION=3s bash benches/memory.sh   # the bounded run CI makes
#   CACHE_MB=64 bash benches/memory.sh          # the server's --cache-mb (default: its own)
# The full run needs about 9 GB of disk and 7 GB of memory while the log is generated.
set -euo pipefail
cd "$(dirname "$0")/.."
CHARGES=${CHARGES:-1000000}
DURATION=${DURATION:-30s}
CONNECTIONS=${CONNECTIONS:-64}
source benches/lib.sh
bench_prepare
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
events=$((CHARGES * 3))
echo "== generating $events events for $CHARGES charges"
REPLAY_EVENTS=$events EVENTS_PER_CHARGE=3 WRITE_SYNTHETIC_LOG="$work/log.jsonl" \
    cargo bench --quiet --bench throughput
grep -o '"stream_id":"ch_[A-Za-z0-9]*","stream_version":1,' "$work/log.jsonl" \
    | cut -d'"' -f4 > "$work/charges"
echo "== importing"
started=$(date +%s)
"$CHARGELEDGER_BIN" import --data "$work/data" < "$work/log.jsonl"
echo "imported in $(( $(date +%s) - started )) s; store on disk: $(du -sh "$work/data" | cut -f1)"
rm "$work/log.jsonl"
key=sk_test_bench
cache=()
[ -n "${CACHE_MB:-}" ] && cache=(--cache-mb "$CACHE_MB")
start_server "$work/data" $key "$work" "${cache[@]}"
first=$(head -1 "$work/charges")
curl -sf -u $key: "$url/v1/charges/$first" > /dev/null
rss_open=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
CHARGELEDGER_KEY=$key CHARGES_FILE="$work/charges" \
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/http_update.lua "$url" | tee "$work/wrk"
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
rss_peak=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
echo "server RSS with $CHARGES charges and $events events: ${rss_open} kB open, ${rss_after} kB after the load, peak ${rss_peak} kB"
stop_server
check_log_holds_acknowledged "$work/data" "$events" "$work/wrk" imported
