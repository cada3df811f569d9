#!/usr/bin/env bash
# Fan-out: one node alone vs one node in cluster mode vs two clustered nodes
# (subscribers alternating between them, events published through the
# first), same `sealcast bench fanout` workload, interleaved, ROUNDS times.
#   scripts/bench/cluster-fanout.sh [ROUNDS] [-- extra fanout args]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; shift || true; [ "${1:-}" = "--" ] && shift
EXTRA=("$@"); [ ${#EXTRA[@]} -eq 0 ] && EXTRA=(--subscribers 1000 --messages 2000 --payload 200 --rate 0)
cargo build --quiet --release --locked -p sealcast-server
BIN=target/release/sealcast
DIR=$(mktemp -d)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
REDIS=$!
PIDS=()
cleanup() { stop_all; kill "$REDIS" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
printf '[[apps]]\nid = "bench"\nkey = "bench-key"\nsecret = "bench-secret"\nmax_connections = 100000\n' > "$DIR/bench.toml"
start() { # start NAME [cluster args…]; sets PORT (not in a subshell: PIDS must persist)
  PORT=$(free_port)
  "$BIN" serve --port "$PORT" --config "$DIR/bench.toml" --data-dir "$DIR/$1" "${@:2}" >"$DIR/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
}
stop_all() {
  [ ${#PIDS[@]} -eq 0 ] && return 0
  kill "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
}
bench() { "$BIN" bench fanout --app-id bench --key bench-key --secret bench-secret "$@" "${EXTRA[@]}" 2>/dev/null; }
for round in $(seq "$ROUNDS"); do
  echo "== round $round: one node"
  start single; bench --url "ws://127.0.0.1:$PORT"; stop_all
  echo "== round $round: one node, cluster mode"
  start c1 --cluster "redis://127.0.0.1:$RPORT/0"; bench --url "ws://127.0.0.1:$PORT"; stop_all
  echo "== round $round: two nodes"
  start n1 --cluster "redis://127.0.0.1:$RPORT/0"; a=$PORT
  start n2 --cluster "redis://127.0.0.1:$RPORT/0"; b=$PORT
  bench --url "ws://127.0.0.1:$a" --also-url "ws://127.0.0.1:$b"; stop_all
done
