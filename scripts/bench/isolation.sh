#!/usr/bin/env bash
# Isolation under attack: how much another app's attack on the same server
# moves a victim app's p99 (client events, or document op acks). Runs the
# hostile-client tests of server/tests/abuse.rs ROUNDS times, one at a time,
# with SEALCAST_ISOLATION_STRICT=1 (each test then also fails when the
# victim's p99 during the attack exceeds twice its baseline, 10 ms floor),
# and prints one line per attack and round with the ratio during/baseline.
# The tests themselves (scripts/test.sh) only require the victim to be
# served within 250 ms: these ratios are noisy on 2 cores and belong here.
#
# Usage: scripts/bench/isolation.sh [ROUNDS] [SEALCAST_BINARY]
# The binary defaults to the test build's target/debug/sealcast; pass
# target/release/sealcast (built first) to measure the release build.
set -uo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
bin=${2:-}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
env_bin=()
[ -n "$bin" ] && env_bin=(SEALCAST_TEST_BIN="$(realpath "$bin")")
cargo test --locked -q -p sealcast-server --test abuse --no-run >/dev/null || exit 1
failed=0
for round in $(seq "$rounds"); do
    if ! env "${env_bin[@]}" SEALCAST_ISOLATION_STRICT=1 \
        cargo test --locked -q -p sealcast-server --test abuse -- --test-threads=1 --nocapture >"$log" 2>&1; then
        failed=$((failed + 1))
        grep -E "panicked|over .* \(baseline" "$log" | sed "s/^/round $round: /"
    fi
    grep -oE "isolation [^:]+: victim p99 .*" "$log" | sed -E \
        "s/^isolation ([^:]*): victim p99 baseline ([0-9.]+) ms, during the attack ([0-9.]+) ms \(attack ran throughout: ([a-z]+)\)/\1\t\2\t\3\tran throughout: \4/" |
        awk -F'\t' -v r="$round" '{ printf "round %s  %-36s baseline %6.2f ms  during %6.2f ms  ratio %5.2f  %s\n", r, $1, $2, $3, ($2 > 0 ? $3 / $2 : 0), $4 }'
done
echo "rounds over the strict 2x bound (of $rounds): $failed"
