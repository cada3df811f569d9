#!/usr/bin/env bash
# Fan-out over TLS vs plain WebSockets, one release server per run (data on
# tmpfs), rounds interleaved: `sealcast bench fanout` with 1,000
# subscribers, 1,000 events of 200 B at 50/s, against `serve` plain and
# `serve --tls-cert/--tls-key` (a throwaway CA from scripts/test-ca.sh).
#   scripts/bench/tls-fanout-ab.sh [ROUNDS] [BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; BIN=${2:-target/release/sealcast}; port=6021
ca=$(mktemp -d); scripts/test-ca.sh "$ca"
trap '[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; rm -rf "$ca"; true' EXIT
for r in $(seq "$ROUNDS"); do
  for mode in plain tls; do
    dir=$(mktemp -d -p /dev/shm)
    serve=(); url=ws://127.0.0.1:$port; bench=()
    if [ $mode = tls ]; then
      serve=(--tls-cert "$ca/server.pem" --tls-key "$ca/server.key"); url=wss://127.0.0.1:$port; bench=(--ca "$ca/ca.pem")
    fi
    SEALCAST_APP_ID=b SEALCAST_APP_KEY=b SEALCAST_APP_SECRET=b RUST_LOG=warn \
      "$BIN" serve --port $port --data-dir "$dir/data" "${serve[@]}" > /dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    echo "round $r $mode:"
    "$BIN" bench fanout --url "$url" "${bench[@]}" --app-id b --key b --secret b \
      --subscribers 1000 --messages 1000 --payload 200 --rate 50 --server-pid $pid | grep -E "delivered|latency|server:"
    kill -TERM $pid; wait $pid 2>/dev/null || true; pid=; rm -rf "$dir"
  done
done
