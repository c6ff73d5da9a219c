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
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
if [ -z "${CHARGELEDGER_BIN:-}" ]; then
    cargo build --release --quiet
    CHARGELEDGER_BIN=./target/release/chargeledger
fi
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
"$CHARGELEDGER_BIN" serve --addr 127.0.0.1:0 --data "$work/data" --api-key $key "${cache[@]}" \
    > "$work/out" 2> "$work/err" &
server=$!
for _ in $(seq 600); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/out")
first=$(head -1 "$work/charges")
curl -sf -u $key: "$url/v1/charges/$first" > /dev/null
rss_open=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
CHARGELEDGER_KEY=$key CHARGES_FILE="$work/charges" \
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/http_update.lua "$url" | tee "$work/wrk"
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
rss_peak=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
echo "server RSS with $CHARGES charges and $events events: ${rss_open} kB open, ${rss_after} kB after the load, peak ${rss_peak} kB"
kill -TERM $server
while kill -0 $server 2>/dev/null; do sleep 0.1; done
server=
logged=$("$CHARGELEDGER_BIN" verify --data "$work/data" --json | grep -o '"events": *[0-9]*' | grep -o '[0-9]*$')
answered=$(awk '/requests in/ {print $1}' "$work/wrk")
non_2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk"); non_2xx=${non_2xx:-0}
echo "events in the log: $logged = $events imported + $((logged - events)) updates; wrk counted $answered answers, $non_2xx non-2xx"
if [ $((logged - events)) -lt $((answered - non_2xx)) ]; then
    echo "FAIL: fewer updates in the log than acknowledged" >&2
    exit 1
fi
