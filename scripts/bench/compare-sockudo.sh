#!/usr/bin/env bash
# Interleaved A/B runs of `sealcast bench` against sealcast and Sockudo with
# identical parameters, on loopback. Both servers serve app
# anchor-app / anchor-key / anchor-secret on 127.0.0.1:6001 (one at a time).
#
# Usage: scripts/bench/compare-sockudo.sh SOCKUDO_BIN [ROUNDS] -- BENCH_ARGS…
#   e.g. scripts/bench/compare-sockudo.sh /work/sockudo/bin/sockudo 3 -- fanout --subscribers 1000 --messages 2000 --payload 200 --rate 0
# Build sealcast first: cargo build --release -p sealcast-server
# Sockudo: cargo install sockudo --version 5.2.0 --locked --no-default-features --features local --root DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
SOCKUDO=${1:?path to the sockudo binary}
ROUNDS=${2:-3}
shift 2
[ "${1:-}" = "--" ] && shift
SEALCAST=$PWD/target/release/sealcast
CONFIG=$PWD/scripts/bench/sockudo-bench.toml

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/6001) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

port_busy() { (exec 3<>/dev/tcp/127.0.0.1/6001) 2>/dev/null; }
# A failing bench must not leave its server holding the port.
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; true' EXIT

run_one() {
    local name=$1; shift
    if port_busy; then echo "127.0.0.1:6001 is already in use: stop that server first" >&2; exit 1; fi
    "$@" >/tmp/bench-server-$name.log 2>&1 &
    local pid=$!
    SERVER_PID=$pid
    wait_port || { echo "$name did not start" >&2; kill $pid; return 1; }
    sleep 0.5
    printf '%-9s ' "$name"
    $SEALCAST bench "${BENCH_ARGS[@]}" --url ws://127.0.0.1:6001 --app-id anchor-app --key anchor-key \
        --secret anchor-secret --server-pid $pid --json
    kill -TERM $pid; wait $pid 2>/dev/null || true
    sleep 1
}

BENCH_ARGS=("$@")
for round in $(seq "$ROUNDS"); do
    echo "# round $round"
    SEALCAST_APP_ID=anchor-app SEALCAST_APP_KEY=anchor-key SEALCAST_APP_SECRET=anchor-secret RUST_LOG=warn \
        run_one sealcast $SEALCAST serve --host 127.0.0.1 --port 6001 --data-dir "$(mktemp -d)"
    (cd "$(dirname "$CONFIG")" && run_one sockudo "$SOCKUDO" --config "$CONFIG")
done
