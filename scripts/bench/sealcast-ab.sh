#!/usr/bin/env bash
# Interleaved A/B of two sealcast builds under the same `sealcast bench`
# workload (fresh server per run, app anchor-app on 127.0.0.1:6001, the
# client from build B). Usage:
#   scripts/bench/sealcast-ab.sh BIN_A BIN_B ROUNDS -- BENCH_ARGS…
#   e.g. scripts/bench/sealcast-ab.sh /tmp/old/sealcast target/release/sealcast 3 -- fanout --subscribers 1000 --messages 2000 --payload 200 --rate 0
set -euo pipefail
a=$1 b=$2 rounds=$3
shift 3
[ "${1:-}" = "--" ] && shift
port=6001
# A failing bench must not leave its server holding the port.
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
for round in $(seq "$rounds"); do
  echo "# round $round"
  for label in A B; do
    bin=$a; [ "$label" = B ] && bin=$b
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is busy" >&2; exit 1; fi
    SEALCAST_APP_ID=anchor-app SEALCAST_APP_KEY=anchor-key SEALCAST_APP_SECRET=anchor-secret RUST_LOG=warn \
      "$bin" serve --host 127.0.0.1 --port $port --data-dir "$(mktemp -d)" >"/tmp/sealcast-ab-$label.log" 2>&1 &
    pid=$!
    wait_port || { echo "$label did not start" >&2; kill $pid; exit 1; }
    sleep 0.5
    printf '%s ' "$label"
    "$b" bench "$@" --url ws://127.0.0.1:$port --app-id anchor-app --key anchor-key \
      --secret anchor-secret --server-pid $pid --json
    kill -TERM $pid; wait $pid 2>/dev/null || true
    sleep 1
  done
done
