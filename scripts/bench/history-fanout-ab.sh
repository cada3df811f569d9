#!/usr/bin/env bash
# Fan-out with channel history off vs on (memory store, SQLite store),
# interleaved, a fresh server per run with its data on tmpfs:
#   scripts/bench/history-fanout-ab.sh BIN ROUNDS [bench fanout args…]
# e.g. scripts/bench/history-fanout-ab.sh target/release/sealcast 3 \
#        --subscribers 1000 --messages 2000 --payload 200 --rate 0
# Prints one JSON line per run (`sealcast bench fanout --json`), labelled.
set -euo pipefail
trap '[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; true' EXIT
BIN=$1 ROUNDS=$2; shift 2
port=6012
for r in $(seq "$ROUNDS"); do
  for variant in off memory sqlite; do
    dir=$(mktemp -d -p /dev/shm)
    {
      [ $variant = sqlite ] && printf '[history]\nstore = "sqlite"\n\n'
      printf '[[apps]]\nid = "anchor-app"\nkey = "anchor-key"\nsecret = "anchor-secret"\n'
      [ $variant != off ] && printf '[[apps.history]]\nchannels = ["bench-*"]\nmax_events = 1000\n'
      true
    } > "$dir/sealcast.toml"
    RUST_LOG=warn "$BIN" serve --host 127.0.0.1 --port $port --config "$dir/sealcast.toml" --data-dir "$dir/data" > /dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    printf '{"round":%s,"history":"%s","result":' "$r" "$variant"
    "$BIN" bench fanout --url ws://127.0.0.1:$port --app-id anchor-app --key anchor-key --secret anchor-secret \
      --server-pid $pid --json "$@" 2>/dev/null | tail -1 | tr -d '\n'
    printf '}\n'
    kill -TERM $pid; wait $pid 2>/dev/null || true; pid=; rm -rf "$dir"
  done
done
