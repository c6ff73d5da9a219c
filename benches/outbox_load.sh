#!/usr/bin/env bash
# The outbox under load, one sitting:
#   1. durable updates through HTTP with no endpoint and no SMTP server (the baseline);
#   2. the same with a webhook endpoint for charge.updated and an SMTP server configured:
#      throughput, and delivery latency from commit to the receiver's answer (p50, p99), from
#      the attempts the outbox recorded;
#   3. the same load with the server killed (SIGKILL) half way and restarted: every
#      acknowledged update's event must reach the receiver.
#   bash benches/outbox_load.sh            # 30 s per run
#   DURATION=5s bash benches/outbox_load.sh
# The receiver is examples/webhook_receiver.rs (it checks every signature); the SMTP server is
# aiosmtpd from PyPI (tests/sdk/smtp_sink.py), installed into target/bench-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30s}
CONNECTIONS=${CONNECTIONS:-64}
source benches/lib.sh
bench_prepare
cargo build --release --quiet --example webhook_receiver
venv=target/bench-venv
if ! "$venv/bin/python" -c "import aiosmtpd" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet aiosmtpd==1.4.6
fi
work=$(mktemp -d)
server= receiver= sink=
cleanup() {
    for pid in $server $receiver $sink; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
key=sk_test_outboxloadkey000001
seconds=${DURATION%s}

make_charges() {
    for n in $(seq 1000); do
        curl -s -u $key: "$url/v1/charges" -d amount=1000 -d currency=usd -d source=tok_visa \
            | grep -o '"id":"ch_[A-Za-z0-9]*"' | head -1 | cut -d'"' -f4
    done > "$work/charges"
}

load() { # $1: wrk output file; $2: run time
    CHARGELEDGER_KEY=$key CHARGES_FILE="$work/charges" \
        wrk -t2 -c"$CONNECTIONS" -d"$2" --latency -s benches/http_update.lua "$url" > "$1" || true
}

rate() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }

echo "== 1. no endpoint, no SMTP"
start_server "$work/plain" $key "$work"
make_charges
load "$work/wrk-plain" "$DURATION"
stop_server
check_log_holds_acknowledged "$work/plain" 1000 "$work/wrk-plain" "creations"

echo "== 2. a webhook endpoint and SMTP configured"
"$venv/bin/python" tests/sdk/smtp_sink.py "$work/smtp-port" "$work/mail-log" &
sink=$!
./target/release/examples/webhook_receiver --listen 127.0.0.1:0 --secret-file "$work/secret" \
    --log "$work/received" > "$work/receiver-out" &
receiver=$!
for _ in $(seq 100); do [ -s "$work/smtp-port" ] && grep -q receiving "$work/receiver-out" && break; sleep 0.1; done
hook=$(grep -o 'http://[0-9.:]*/webhooks' "$work/receiver-out")
smtp="smtp://127.0.0.1:$(cat "$work/smtp-port")"
start_server "$work/hooked" $key "$work" --smtp-url "$smtp"
curl -s -u $key: "$url/v1/webhook_endpoints" -d url="$hook" -d 'enabled_events[]=charge.updated' \
    | grep -o '"secret":"whsec_[A-Za-z0-9]*"' | cut -d'"' -f4 > "$work/secret"
make_charges
load "$work/wrk-hooked" "$DURATION"
# Let the outbox drain: wait until the receiver's count stops growing.
previous=-1
while [ "$(wc -l < "$work/received")" != "$previous" ]; do previous=$(wc -l < "$work/received"); sleep 1; done
stop_server
check_log_holds_acknowledged "$work/hooked" 1001 "$work/wrk-hooked" "creations and the endpoint"
RUST_LOG=warn "$CHARGELEDGER_BIN" deliveries --data "$work/hooked" --json > "$work/deliveries.json"
python3 - "$work/deliveries.json" "$work/received" <<'PY'
import json, sys
deliveries = json.load(open(sys.argv[1]))
received = {line.split()[0] for line in open(sys.argv[2]) if line.strip()}
latencies = sorted(
    d["attempts"][-1]["at_ms"] + d["attempts"][-1]["latency_ms"] - d["created_ms"]
    for d in deliveries if d["status"] == "delivered"
)
by_status = {}
for d in deliveries:
    by_status[d["status"]] = by_status.get(d["status"], 0) + 1
def pct(p):
    return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None
print(f"deliveries: {len(deliveries)} {by_status}; receiver verified {len(received)} distinct events")
print(f"commit to receiver's answer: p50 {pct(0.50)} ms, p99 {pct(0.99)} ms, max {latencies[-1] if latencies else None} ms")
missing = [d["event"] for d in deliveries if d["event"] not in received]
if missing or by_status.get("delivered", 0) != len(deliveries):
    sys.exit(f"FAIL: {len(missing)} events never reached the receiver")
PY
echo "throughput: $(rate "$work/wrk-plain") updates/s without, $(rate "$work/wrk-hooked") with an endpoint and SMTP (p99 $(p99 "$work/wrk-plain") and $(p99 "$work/wrk-hooked"))"

echo "== 3. kill -9 half way, restart, every acknowledged update delivered"
: > "$work/received"
start_server "$work/crashed" $key "$work" --smtp-url "$smtp"
curl -s -u $key: "$url/v1/webhook_endpoints" -d url="$hook" -d 'enabled_events[]=charge.updated' \
    | grep -o '"secret":"whsec_[A-Za-z0-9]*"' | cut -d'"' -f4 > "$work/secret"
make_charges
load "$work/wrk-crashed" "$DURATION" &
loader=$!
sleep $(( ${seconds:-30} / 2 > 0 ? ${seconds:-30} / 2 : 1 ))
kill -KILL "$server"; wait "$server" 2>/dev/null || true
server=
wait $loader || true
# The restarted server sends what the killed one had not delivered.
start_server "$work/crashed" $key "$work" --smtp-url "$smtp"
previous=-1
while [ "$(wc -l < "$work/received")" != "$previous" ]; do previous=$(wc -l < "$work/received"); sleep 2; done
stop_server
RUST_LOG=warn "$CHARGELEDGER_BIN" export --data "$work/crashed" > "$work/log.jsonl"
python3 - "$work/log.jsonl" "$work/received" "$work/wrk-crashed" <<'PY'
import json, re, sys
updates = {json.loads(line)["body"]["event_id"] for line in open(sys.argv[1])
           if json.loads(line)["body"]["payload"]["type"] == "charge.updated"}
lines = [line.split()[0] for line in open(sys.argv[2]) if line.strip()]
received = set(lines)
wrk = open(sys.argv[3]).read()
answered = sum(int(n) for n in re.findall(r"(\d+) requests in", wrk))
non_2xx = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", wrk))
print(f"after kill -9: {len(updates)} updates in the log (wrk saw {answered - non_2xx} acknowledged before the kill or failed after it), "
      f"{len(received)} delivered, {len(lines) - len(received)} duplicates")
missing = updates - received
if missing:
    sys.exit(f"FAIL: {len(missing)} logged updates never reached the receiver")
PY
