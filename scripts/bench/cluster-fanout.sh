#!/usr/bin/env bash
# Fan-out: one node alone vs one node in cluster mode vs two clustered nodes
# (subscribers alternating between them, events published through the
# first), same `sealcast bench fanout` workload, interleaved, ROUNDS times.
#   scripts/bench/cluster-fanout.sh [ROUNDS] [-- extra fanout args]
# With SOCKUDO=/path/to/sockudo (built with `--features local,redis`), each
# round also runs Sockudo alone and two Sockudo nodes on its Redis adapter
# against the same private redis-server (config: scripts/bench/sockudo-bench.toml
# with the app renamed, the port changed, and for two nodes `[adapter]` and
# `[cache]` on Redis: Sockudo refuses a clustered node with a node-local cache).
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
# Each run also prints the CPU time redis-server spent on it (the bus cost).
redis_ticks() { awk '{print $14 + $15}' "/proc/$REDIS/stat"; }
bench() {
  local before; before=$(redis_ticks)
  "$BIN" bench fanout --app-id bench --key bench-key --secret bench-secret "$@" "${EXTRA[@]}" 2>"$DIR/bench.err" \
    || { echo "bench failed:"; cat "$DIR/bench.err"; }
  echo "redis-server cpu: $(( ($(redis_ticks) - before) * 10 )) ms"
}
sockudo_config() { # sockudo_config NAME PORT DRIVER
  sed -e "s/^port = 6001/port = $2/" -e 's/"anchor-app"/"bench"/; s/"anchor-key"/"bench-key"/; s/"anchor-secret"/"bench-secret"/' \
      -e "s/^driver = \"local\"/driver = \"$3\"/" scripts/bench/sockudo-bench.toml \
    | awk -v driver="$3" '/^\[/ { section = $0 }
        section == "[cache]" && driver == "redis" && /^driver =/ { print "driver = \"redis\""; next } { print }' \
    > "$DIR/$1.toml"
  printf '\n[database.redis]\nhost = "127.0.0.1"\nport = %s\n' "$RPORT" >> "$DIR/$1.toml"
}
start_sockudo() { # start_sockudo NAME DRIVER; sets PORT
  PORT=$(free_port)
  sockudo_config "$1" "$PORT" "$2"
  (cd "$DIR" && exec "$SOCKUDO" --config "$DIR/$1.toml" >"$DIR/$1.log" 2>&1) &
  PIDS+=($!)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
}
for round in $(seq "$ROUNDS"); do
  echo "== round $round: one node"
  start single; bench --url "ws://127.0.0.1:$PORT"; stop_all
  echo "== round $round: one node, cluster mode"
  start c1 --cluster "redis://127.0.0.1:$RPORT/0"; bench --url "ws://127.0.0.1:$PORT"; stop_all
  echo "== round $round: two nodes"
  start n1 --cluster "redis://127.0.0.1:$RPORT/0"; a=$PORT
  start n2 --cluster "redis://127.0.0.1:$RPORT/0"; b=$PORT
  bench --url "ws://127.0.0.1:$a" --also-url "ws://127.0.0.1:$b"; stop_all
  [ -n "${SOCKUDO:-}" ] || continue
  echo "== round $round: Sockudo, one node"
  start_sockudo s-single local; bench --url "ws://127.0.0.1:$PORT"; stop_all
  echo "== round $round: Sockudo, two nodes (Redis adapter)"
  start_sockudo s1 redis; a=$PORT
  start_sockudo s2 redis; b=$PORT
  bench --url "ws://127.0.0.1:$a" --also-url "ws://127.0.0.1:$b"; stop_all
done
