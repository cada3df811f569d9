#!/usr/bin/env bash
# Client-side cost of sealed chat events, native Rust vs the Python and
# Kotlin bindings (release builds). For each round and language, a receiver
# subscribes to private-bench, a Rust sender sends COUNT sealed events at
# RATE/s, and the receiver reports its process CPU time per received event
# (open + dispatch to the app, after 1,000 warm-up events) and the wall time
# per send_chat call (seal + queue). Needs scripts/bindings.sh to have run
# once (Kotlin compiler in ~/.cache/sealcast-bindings).
#   scripts/bench/client-ffi.sh [ROUNDS] [COUNT] [RATE]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3} COUNT=${2:-20000} RATE=${3:-5000}
CACHE=${BINDINGS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sealcast-bindings}
KC=$CACHE/kotlin/node_modules/kotlin-compiler
OUT=target/bench-ffi
cargo build --quiet --release --locked -p sealcast-ffi -p sealcast-server
cargo build --quiet --release --locked -p sealcast-examples --examples
cargo build --quiet --locked --manifest-path bindings/bindgen/Cargo.toml
rm -rf "$OUT" && mkdir -p "$OUT"
LIB=$PWD/target/release/libsealcast_ffi.so
for lang in kotlin python; do
  bindings/bindgen/target/debug/uniffi-bindgen generate --no-format --library "$LIB" --language $lang --out-dir "$OUT/$lang" >/dev/null
done
cp "$LIB" "$OUT/python/"
CP=/usr/share/java/jna.jar
JAVA_OPTS="-Xmx1g" "$KC/bin/kotlinc" -nowarn -cp "$CP" "$OUT/kotlin/io/sealcast/sealcast.kt" tests/bindings/Bench.kt -d "$OUT/kotlin-classes"

DATA=$(mktemp -d)
printf '[[apps]]\nid = "bench"\nkey = "bench-key"\nsecret = "bench-secret"\nclient_events_per_second = 1000000\nmax_event_payload_bytes = 65536\n' > "$DATA/bench.toml"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/release/sealcast serve --port "$PORT" --config "$DATA/bench.toml" --data-dir "$DATA/data" >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

receiver() {
  case $1 in
    rust) target/release/examples/client_bench --role receiver --port "$PORT" --count "$COUNT" ;;
    python) python3 tests/bindings/bench_client.py "$OUT/python" "$PORT" "$COUNT" ;;
    kotlin) java -Djna.library.path="$(dirname "$LIB")" -cp "$OUT/kotlin-classes:$CP:$KC/lib/kotlin-stdlib.jar" BenchKt "$PORT" "$COUNT" ;;
  esac
}

for round in $(seq "$ROUNDS"); do
  for lang in rust python kotlin; do
    receiver "$lang" >"$DATA/receiver.out" 2>&1 &
    pid=$!
    for _ in $(seq 300); do grep -q '^ready' "$DATA/receiver.out" && break; sleep 0.1; done
    grep -q '^ready' "$DATA/receiver.out" || { cat "$DATA/receiver.out"; exit 1; }
    target/release/examples/client_bench --role sender --port "$PORT" --count "$COUNT" --rate "$RATE"
    wait "$pid" || { cat "$DATA/receiver.out"; exit 1; }
    echo "round $round $(grep 'us cpu/event' "$DATA/receiver.out")"
  done
done
