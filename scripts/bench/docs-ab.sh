#!/usr/bin/env bash
# Interleaved A/B of the document sequencer: two sealcast binaries, each
# round starting each on a fresh data directory, running the same
# `sealcast bench doc-sequencer` workloads. Usage:
#   scripts/bench/docs-ab.sh BIN_A BIN_B ROUNDS [DATA_ROOT]
# DATA_ROOT defaults to a directory under /tmp (a real disk: fsync counts).
set -euo pipefail
a=$1 b=$2 rounds=$3 root=${4:-/tmp/sealcast-docs-ab}
port=6111
bench_args=(--url "ws://127.0.0.1:$port" --app-id bench --key bench-key --secret bench-secret)
mkdir -p "$root"
cat > "$root/bench.toml" <<TOML
[[apps]]
id = "bench"
key = "bench-key"
secret = "bench-secret"
doc_ops_per_second = 1000000
TOML
for round in $(seq "$rounds"); do
  for label in A B; do
    bin=$a; [ "$label" = B ] && bin=$b
    rm -rf "$root/data"
    "$bin" serve --port $port --config "$root/bench.toml" --data-dir "$root/data" >"$root/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    for workload in "--docs 1 --writers 4" "--docs 100 --writers 1"; do
      echo "== round $round $label ($bin) $workload"
      # shellcheck disable=SC2086
      "$b" bench doc-sequencer "${bench_args[@]}" $workload --seconds "${SECONDS_PER_RUN:-6}" | sed -n '2,3p'
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
