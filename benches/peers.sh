#!/usr/bin/env bash
# The same wrk load against chargeledger and two in-memory Stripe mocks, one after another, and
# one markdown table of updates/s, latency and failures:
#   1. chargeledger (durable: every acknowledged update is an event appended to its log)
#   2. stripe-stateful-mock (npm; Express, state in memory)
#   3. localstripe (PyPI; aiohttp, state in memory, pickled whole to /tmp/localstripe.pickle
#      after every POST, without fsync)
# Each server gets the same number of charges, created with curl, then wrk runs
# benches/http_update.lua against it (metadata[load]=... updates on those charges) with
# -t2 -c$CONNECTIONS -d$DURATION. A single update is checked with curl (200 and the new metadata
# in the answer) before wrk runs. A peer that cannot be installed or started gets a row saying
# why; chargeledger failing fails the script.
#   bash benches/peers.sh
#   DURATION=5s CHARGES=200 bash benches/peers.sh
# Environment:
#   CHARGELEDGER_BIN  the chargeledger binary (default: cargo build --release, then ./target/release)
#   DURATION          wrk duration per server (default 10s)
#   CONNECTIONS       wrk connections (default 64)
#   CHARGES           charges created on each server before the load (default 1000)
#   PEERS_DIR         install cache for the peers (default ~/.cache/chargeledger-peers): the npm
#                     package goes to $PEERS_DIR/node, localstripe to the venv $PEERS_DIR/venv;
#                     both are installed there on first use only (from npm and PyPI)
#   SSM_VERSION, LOCALSTRIPE_VERSION   the peers' versions to install (0.0.16, 1.15.10)
#   PEERS             which peers to run, space-separated (default "stripe-stateful-mock localstripe")
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
CHARGES=${CHARGES:-1000}
PEERS_DIR=${PEERS_DIR:-$HOME/.cache/chargeledger-peers}
SSM_VERSION=${SSM_VERSION:-0.0.16}
LOCALSTRIPE_VERSION=${LOCALSTRIPE_VERSION:-1.15.10}
PEERS=${PEERS:-stripe-stateful-mock localstripe}
key=sk_test_loadtestkey00000001

source benches/lib.sh
bench_prepare

work=$(mktemp -d)
server=
pickle_backup=
localstripe_ran=
cleanup() {
    stop_server
    if [ -n "$localstripe_ran" ]; then rm -f /tmp/localstripe.pickle; fi
    if [ -n "$pickle_backup" ]; then mv -f "$pickle_backup" /tmp/localstripe.pickle; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL SECONDS: until the server answers anything at all over HTTP.
wait_http() {
    local url=$1 tries=$(($2 * 10))
    for _ in $(seq "$tries"); do
        if [ -n "$server" ] && ! kill -0 "$server" 2>/dev/null; then return 1; fi
        code=$(curl -s -o /dev/null -w '%{http_code}' -u $key: "$url/v1/charges?limit=1" || true)
        [ "$code" != 000 ] && return 0
        sleep 0.1
    done
    return 1
}

rows=()
notes=()
reason=

# bench NAME DURABLE URL CREATE_ARGS...: creates $CHARGES charges with curl -d CREATE_ARGS, checks
# one update, runs wrk, adds a row; on failure sets $reason and returns 1.
bench() {
    local name=$1 durable=$2 url=$3; shift 3
    local args=() a
    for a in "$@"; do args+=(-d "$a"); done
    local dir="$work/$name"; mkdir -p "$dir"
    local n
    for n in $(seq "$CHARGES"); do
        curl -s -u $key: "$url/v1/charges" -d amount=1000 -d currency=usd "${args[@]}" \
            | grep -o '"id": *"ch_[A-Za-z0-9_]*"' | head -1 | grep -o 'ch_[A-Za-z0-9_]*' || true
    done > "$dir/charges"
    local created; created=$(wc -l < "$dir/charges")
    if [ "$created" -eq 0 ]; then
        reason="no charge created ($(curl -s -u $key: "$url/v1/charges" -d amount=1000 -d currency=usd "${args[@]}" | tr -d '\n' | head -c 160))"
        return 1
    fi
    # One update by hand, as wrk will send it: 200, and the new value in the answer.
    local id; id=$(head -1 "$dir/charges")
    local code; code=$(curl -s -o "$dir/check" -w '%{http_code}' -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/x-www-form-urlencoded' \
        "$url/v1/charges/$id" --data 'metadata[load]=check-1' || true)
    if [ "$code" != 200 ] || ! grep -q '"load": *"check-1"' "$dir/check"; then
        reason="update check failed: HTTP $code $(tr -d '\n' < "$dir/check" | head -c 160)"
        return 1
    fi
    echo "== $name: $created charges, update check 200 with metadata[load]=check-1; wrk -t2 -c$CONNECTIONS -d$DURATION"
    CHARGELEDGER_KEY=$key CHARGES_FILE="$dir/charges" \
        wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/http_update.lua "$url" \
        | tee "$dir/wrk" || { reason="wrk failed"; return 1; }
    local rps p50 p99 errors non2xx line
    rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$dir/wrk")
    line=$(grep -E '^p50 .* ms, p99 .* ms, [0-9]+ requests, [0-9]+ errors \(non-2xx [0-9]+\)' "$dir/wrk" | tail -1)
    if [ -z "$rps" ] || [ -z "$line" ]; then reason="could not parse wrk's output"; return 1; fi
    p50=$(sed -E 's/^p50 ([0-9.]+) ms.*/\1/' <<< "$line")
    p99=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<< "$line")
    errors=$(sed -E 's/.* ([0-9]+) errors.*/\1/' <<< "$line")
    non2xx=$(sed -E 's/.*non-2xx ([0-9]+)\).*/\1/' <<< "$line")
    # The line wrk prints when any socket error happened, kept for the notes.
    local sock; sock=$(grep -o 'Socket errors:.*' "$dir/wrk" || true)
    # What the load left on one charge, as evidence that the updates took effect.
    local last; last=$(curl -s -u $key: "$url/v1/charges/$(tail -1 "$dir/charges")" \
        | grep -o '"load": *"[^"]*"' | head -1 | sed -E 's/.*"([^"]*)"$/\1/' || true)
    rows+=("| $name | $durable | $rps | $p50 ms | $p99 ms | $non2xx | $errors |")
    notes+=("$name: $created charges; $(grep -o '[0-9]* requests in [^,]*' "$dir/wrk")${sock:+; $sock}; afterwards $(tail -1 "$dir/charges") has metadata[load]=${last:-(none)}")
}

# 1. chargeledger: its failures fail the script.
"$CHARGELEDGER_BIN" serve --addr 127.0.0.1:0 --data "$work/data" --api-key $key \
    > "$work/cl.out" 2> "$work/cl.err" &
server=$!
for _ in $(seq 100); do grep -q listening "$work/cl.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/cl.out" || true)
if [ -z "$url" ] || ! wait_http "$url" 10; then
    echo "FAIL: chargeledger did not start:" >&2; cat "$work/cl.out" "$work/cl.err" >&2; exit 1
fi
cl_name="chargeledger $("$CHARGELEDGER_BIN" --version 2>/dev/null | awk '{print $2}' || true)"
cl_name=${cl_name% }
bench "$cl_name" yes "$url" source=tok_visa || { echo "FAIL: chargeledger: $reason" >&2; exit 1; }
stop_server
# As in http_load.sh: every acknowledged update must be an event in the log (the charges
# created, and the one update checked with curl, came before wrk).
check_log_holds_acknowledged "$work/data" $(( $(wc -l < "$work/$cl_name/charges") + 1 )) \
    "$work/$cl_name/wrk" "creations and a checked update"

# 2. stripe-stateful-mock: PORT from the environment; accepts Stripe's test tokens.
run_ssm() {
    local bin="$PEERS_DIR/node/node_modules/.bin/stripe-stateful-mock"
    if [ ! -x "$bin" ]; then
        command -v npm >/dev/null || { reason="npm not found"; return 1; }
        mkdir -p "$PEERS_DIR/node" 2>/dev/null || { reason="cannot create $PEERS_DIR/node"; return 1; }
        echo "== installing stripe-stateful-mock@$SSM_VERSION into $PEERS_DIR/node"
        timeout 600 npm install --prefix "$PEERS_DIR/node" --no-audit --no-fund --loglevel=error \
            "stripe-stateful-mock@$SSM_VERSION" > "$work/ssm.install" 2>&1 \
            || { reason="npm install failed: $(grep -v 'complete log' "$work/ssm.install" | grep -m1 -i error || tail -1 "$work/ssm.install")"; return 1; }
        [ -x "$bin" ] || { reason="npm installed no stripe-stateful-mock command"; return 1; }
    fi
    local version; version=$(node -p "require('$PEERS_DIR/node/node_modules/stripe-stateful-mock/package.json').version" 2>/dev/null || true)
    local port; port=$(free_port)
    PORT=$port LOG_LEVEL=error "$bin" > "$work/ssm.out" 2>&1 &
    server=$!
    wait_http "http://127.0.0.1:$port" 30 \
        || { reason="did not listen on port $port: $(tail -1 "$work/ssm.out")"; return 1; }
    bench "stripe-stateful-mock $version" "no (in memory)" "http://127.0.0.1:$port" source=tok_visa
}

# 3. localstripe: --port N; rejects tok_visa, so charges take a pm_ payment method as source
# (payment_method=pm_... is refused with "Unexpected payment_method").
run_localstripe() {
    local venv="$PEERS_DIR/venv"
    if [ ! -x "$venv/bin/localstripe" ]; then
        mkdir -p "$PEERS_DIR" 2>/dev/null || { reason="cannot create $PEERS_DIR"; return 1; }
        echo "== installing localstripe==$LOCALSTRIPE_VERSION into the venv $venv"
        { [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"; } > "$work/ls.install" 2>&1 \
            || { reason="python3 -m venv failed: $(tail -1 "$work/ls.install")"; return 1; }
        timeout 600 "$venv/bin/pip" install -q "localstripe==$LOCALSTRIPE_VERSION" >> "$work/ls.install" 2>&1 \
            || { reason="pip install failed: $(tail -1 "$work/ls.install")"; return 1; }
        [ -x "$venv/bin/localstripe" ] || { reason="pip installed no localstripe command"; return 1; }
    fi
    local version; version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("localstripe"))' 2>/dev/null || true)
    # It loads and rewrites /tmp/localstripe.pickle: start from scratch, keep any existing one.
    if [ -e /tmp/localstripe.pickle ] && [ -z "$pickle_backup" ]; then
        pickle_backup="$work/localstripe.pickle.orig"; mv /tmp/localstripe.pickle "$pickle_backup"
    fi
    localstripe_ran=1
    local port; port=$(free_port)
    "$venv/bin/localstripe" --port "$port" --from-scratch > "$work/ls.out" 2>&1 &
    server=$!
    local url="http://127.0.0.1:$port"
    wait_http "$url" 30 || { reason="did not listen on port $port: $(tail -1 "$work/ls.out")"; return 1; }
    local pm; pm=$(curl -s -u $key: "$url/v1/payment_methods" -d type=card \
        -d 'card[number]=4242424242424242' -d 'card[exp_month]=12' -d 'card[exp_year]=2030' \
        -d 'card[cvc]=123' | grep -o '"id": *"pm_[A-Za-z0-9_]*"' | grep -o 'pm_[A-Za-z0-9_]*' || true)
    [ -n "$pm" ] || { reason="could not create a payment method"; return 1; }
    bench "localstripe $version" "no (in memory; unsynced pickle in /tmp)" "$url" "source=$pm"
}

for peer in $PEERS; do
    reason=
    case $peer in
        stripe-stateful-mock) run_ssm || rows+=("| stripe-stateful-mock | no (in memory) | not run: $reason | | | | |") ;;
        localstripe) run_localstripe || rows+=("| localstripe | no (in memory; unsynced pickle in /tmp) | not run: $reason | | | | |") ;;
        *) rows+=("| $peer | | not run: unknown peer | | | | |") ;;
    esac
    stop_server
done

echo
echo "wrk -t2 -c$CONNECTIONS -d$DURATION --latency -s benches/http_update.lua, $CHARGES charges on each server, one server at a time, $(nproc) cores"
echo
echo "| server | durable | updates/s | p50 | p99 | non-2xx | errors |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
echo
printf -- '- %s\n' "${notes[@]}"
