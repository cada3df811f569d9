#!/usr/bin/env bash
# Client-side cost of sealed chat events, native Rust vs the Python and
# Kotlin bindings (release builds). For each round and language, a receiver
# subscribes to private-bench, a Rust sender sends COUNT sealed events at
# RATE/s, and the receiver reports its process CPU time per received event
# (open + dispatch to the app, after 1,000 warm-up events) and the wall time
# per send_chat call (seal + queue). Needs scripts/bindings.sh to have run
# once (Kotlin compiler in ~/.cache/sealcast-bindings).
#   scripts/bench/client-ffi.sh [ROUNDS] [COUNT] [RATE]
# A/B against another checkout (e.g. a worktree of the previous commit):
#   BASELINE=/tmp/oldtree BASELINE_TARGET=/tmp/oldtarget scripts/bench/client-ffi.sh 3
# Each round then runs every language's receiver from the baseline and from
# this tree back to back (lines tagged A = baseline, B = this tree), against
# one server and one sender (this tree's).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3} COUNT=${2:-20000} RATE=${3:-5000}
CACHE=${BINDINGS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sealcast-bindings}
KC=$CACHE/kotlin/node_modules/kotlin-compiler
CP=/usr/share/java/jna.jar
HERE=$PWD

# build TREE TARGET_DIR OUT: the library, the Rust receiver and both bindings.
build() {
  local tree=$1 target=$2 out=$3
  (cd "$tree" && CARGO_TARGET_DIR=$target cargo build --quiet --release --locked -p sealcast-ffi \
    && CARGO_TARGET_DIR=$target cargo build --quiet --release --locked -p sealcast-examples --examples)
  rm -rf "$out" && mkdir -p "$out"
  local lib=$target/release/libsealcast_ffi.so
  for lang in kotlin python; do
    "$HERE/bindings/bindgen/target/debug/uniffi-bindgen" generate --no-format --library "$lib" --language $lang \
      --out-dir "$out/$lang" >/dev/null
  done
  cp "$lib" "$out/python/"
  JAVA_OPTS="-Xmx1g" "$KC/bin/kotlinc" -nowarn -cp "$CP" "$out/kotlin/io/sealcast/sealcast.kt" \
    "$tree/tests/bindings/Bench.kt" -d "$out/kotlin-classes"
}

cargo build --quiet --release --locked -p sealcast-server
cargo build --quiet --locked --manifest-path bindings/bindgen/Cargo.toml
TREES=("B:$HERE:$HERE/target:$HERE/target/bench-ffi")
if [ -n "${BASELINE:-}" ]; then
  TREES=("A:$BASELINE:${BASELINE_TARGET:-$BASELINE/target}:$HERE/target/bench-ffi-baseline" "${TREES[@]}")
fi
for entry in "${TREES[@]}"; do
  IFS=: read -r _ tree target out <<<"$entry"
  build "$tree" "$target" "$out"
done

DATA=$(mktemp -d)
printf '[[apps]]\nid = "bench"\nkey = "bench-key"\nsecret = "bench-secret"\nclient_events_per_second = 1000000\nframes_per_second = 1000000\nmax_event_payload_bytes = 65536\n' > "$DATA/bench.toml"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/release/sealcast serve --port "$PORT" --config "$DATA/bench.toml" --data-dir "$DATA/data" >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

# receiver LANG TREE TARGET_DIR OUT
receiver() {
  local lang=$1 tree=$2 target=$3 out=$4
  case $lang in
    rust) "$target/release/examples/client_bench" --role receiver --port "$PORT" --count "$COUNT" ;;
    python) python3 "$tree/tests/bindings/bench_client.py" "$out/python" "$PORT" "$COUNT" ;;
    kotlin) java -Djna.library.path="$target/release" -cp "$out/kotlin-classes:$CP:$KC/lib/kotlin-stdlib.jar" \
      BenchKt "$PORT" "$COUNT" ;;
  esac
}

for round in $(seq "$ROUNDS"); do
  for lang in rust python kotlin; do
    for entry in "${TREES[@]}"; do
      IFS=: read -r tag tree target out <<<"$entry"
      receiver "$lang" "$tree" "$target" "$out" >"$DATA/receiver.out" 2>&1 &
      pid=$!
      for _ in $(seq 300); do grep -q '^ready' "$DATA/receiver.out" && break; sleep 0.1; done
      grep -q '^ready' "$DATA/receiver.out" || { cat "$DATA/receiver.out"; exit 1; }
      target/release/examples/client_bench --role sender --port "$PORT" --count "$COUNT" --rate "$RATE"
      wait "$pid" || { cat "$DATA/receiver.out"; exit 1; }
      echo "round $round $tag $(grep 'us cpu/event' "$DATA/receiver.out")"
    done
  done
done
