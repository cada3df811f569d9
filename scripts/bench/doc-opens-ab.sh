#!/usr/bin/env bash
# Interleaved A/B of `sealcast bench doc-opens` (many clients opening
# documents at once): a fresh server per run with its data on tmpfs and the
# history author's rates lifted, the client from build B.
#   scripts/bench/doc-opens-ab.sh BIN_A BIN_B ROUNDS [--clients 200 --documents 100 --ops 50]
set -euo pipefail
trap '[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; true' EXIT
A=$1 B=$2 ROUNDS=$3; shift 3
port=6011
for r in $(seq "$ROUNDS"); do
  for label in A B; do
    bin=$A; [ $label = B ] && bin=$B
    dir=$(mktemp -d -p /dev/shm)
    # The history is built fast: the author's rates lifted.
    printf '[[apps]]\nid = "anchor-app"\nkey = "anchor-key"\nsecret = "anchor-secret"\ndoc_ops_per_second = 100000\nframes_per_second = 100000\n' > "$dir/sealcast.toml"
    RUST_LOG=warn "$bin" serve --host 127.0.0.1 --port $port --config "$dir/sealcast.toml" --data-dir "$dir/data" > /dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    printf 'round %s %s: ' "$r" "$label"
    "$B" bench doc-opens --url ws://127.0.0.1:$port --app-id anchor-app --key anchor-key --secret anchor-secret "$@" | tail -1
    kill -TERM $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
  done
done
