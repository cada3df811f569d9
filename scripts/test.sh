#!/usr/bin/env bash
# The one command that runs every sealcast test (README names it; .ci/run calls it).
#
# 1. Installs what the tests need when it is missing (idempotent: apt, pip and
#    rustup only act when something is absent), so a fresh Debian machine works.
# 2. Runs: rustfmt check, clippy with warnings denied, the import-cycle check
#    (scripts/check_cycles.py), the whole workspace test
#    suite (unit, property, known-answer vectors, CLI and integration tests,
#    fuzz-corpus replay), the interop suite (the real pusher-js client and
#    `pusher` server library from npm against a real `sealcast serve`), the
#    independent Python check of the envelope test vectors, the browser
#    package (@sealcast/client on the core compiled to WebAssembly: a Node
#    test with pusher-js and a headless-Chromium test of the web demo), the Kotlin,
#    Swift and Python bindings' tests against a real server
#    (scripts/bindings.sh, which installs the Kotlin compiler and a Swift
#    chroot into ~/.cache/sealcast-bindings the first time).
#
# Environment: SEALCAST_TEST_SKIP_INSTALL=1 skips step 1.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

apt_install() {
    # Install the Debian packages named in "$@" that are not installed yet.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_prerequisites() {
    command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        log "rustup component add rustfmt clippy"
        rustup component add rustfmt clippy
    fi
    command -v python3 >/dev/null || apt_install python3 python3-pip
    command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
    command -v curl >/dev/null || apt_install curl
    command -v java >/dev/null || apt_install default-jdk-headless
    [ -f /usr/share/java/jna.jar ] || apt_install libjna-java
    command -v redis-server >/dev/null || apt_install redis-server
    # scripts/test-ca.sh makes the throwaway CA of the TLS interop run.
    command -v openssl >/dev/null || apt_install openssl
    # The browser tests drive Debian's Chromium with playwright-core (no
    # browser download); scripts/build-web.sh adds the wasm32 target and
    # cargo-installs wasm-bindgen-cli at the crate's exact version.
    [ -x /usr/bin/chromium ] || apt_install chromium
    if [ ! -d bindings/js/node_modules/playwright-core ]; then
        log "npm ci (typescript, pusher-js, quill, quill-cursors, playwright-core) in bindings/js"
        (cd bindings/js && npm ci --no-audit --no-fund)
    fi
    if [ ! -d tests/interop/node_modules/pusher-js ] || [ ! -d tests/interop/node_modules/pusher ] \
        || [ ! -d tests/interop/node_modules/laravel-echo ]; then
        log "npm ci (pusher-js, pusher) in tests/interop"
        (cd tests/interop && npm ci --no-audit --no-fund)
    fi
    if [ ! -d tests/ot-diff/node_modules/quill-delta ]; then
        log "npm ci (quill-delta) in tests/ot-diff"
        (cd tests/ot-diff && npm ci --no-audit --no-fund)
    fi
    if ! python3 -c 'import pusher' 2>/dev/null; then
        log "pip install pusher (the Python server library, for the interop suite)"
        python3 -m pip install --quiet 'pusher>=3.3' || python3 -m pip install --quiet --break-system-packages 'pusher>=3.3'
    fi
    if ! python3 -c 'import cryptography' 2>/dev/null; then
        log "pip install cryptography"
        python3 -m pip install --quiet 'cryptography>=41' || python3 -m pip install --quiet --break-system-packages 'cryptography>=41'
    fi
}

[ "${SEALCAST_TEST_SKIP_INSTALL:-0}" = 1 ] || install_prerequisites

# A full run builds several GB (target/ and bindings/bindgen/target/); say
# what the disk has, so "No space left on device" is explained at the top.
log "disk: $(df -h --output=avail . | tail -1 | tr -d ' ') available"

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "no import cycles between modules or folders"
python3 scripts/check_cycles.py

log "cargo test --workspace"
cargo test --workspace --locked

log "documents: two more convergence runs against the real server (random seeds, printed)"
convergence_log=$(mktemp)
for run in 1 2; do
    if DOC_OPS=${DOC_OPS_EXTRA:-3000} cargo test --locked -q -p sealcast-server --test doc_convergence -- --nocapture \
        >"$convergence_log" 2>&1; then
        grep -E "DOC_SEED|ops sequenced|rogue|test result" "$convergence_log"
    else
        # The whole log: a panic's message is on the line after "panicked".
        cat "$convergence_log"
        echo "convergence run $run failed"
        exit 1
    fi
done
rm -f "$convergence_log"

log "OT: differential test against quill-delta (120,000 random cases)"
OT_DIFF_ITERATIONS=${OT_DIFF_ITERATIONS:-20000} cargo test --locked -p sealcast-core --test quill_differential -- --ignored --nocapture

log "interop: pusher-js and the pusher server library against sealcast serve"
# `cargo test --workspace` above built target/debug/sealcast for the server's
# integration tests; a separate `cargo build` would rebuild dependencies with
# a different feature set for nothing.
[ -x target/debug/sealcast ] || cargo build --locked -p sealcast-server
(cd tests/interop && SEALCAST_BIN="$PWD/../../target/debug/sealcast" node --test)

log "interop again against a 2-node cluster (own redis-server; clients alternate nodes)"
(cd tests/interop && SEALCAST_INTEROP_CLUSTER=1 SEALCAST_BIN="$PWD/../../target/debug/sealcast" node --test)

log "interop again with every channel keeping history (positions on every event, docs/history.md)"
(cd tests/interop && SEALCAST_APP_HISTORY='*' SEALCAST_BIN="$PWD/../../target/debug/sealcast" node --test)

log "interop again over TLS (wss:// and https:// on the server's port, a throwaway CA; docs/configuration.md)"
tls_dir=$(mktemp -d)
scripts/test-ca.sh "$tls_dir"
(cd tests/interop && SEALCAST_INTEROP_TLS="$tls_dir" NODE_EXTRA_CA_CERTS="$tls_dir/ca.pem" \
    SEALCAST_BIN="$PWD/../../target/debug/sealcast" node --test)
rm -rf "$tls_dir"

log "browser package: wasm + TypeScript build, Node test, headless Chromium test"
scripts/build-web.sh
for example in auth_server chat doc_peer; do
    [ -x "target/debug/examples/$example" ] || cargo build --locked -q -p sealcast-examples --example "$example"
done
scripts/web-site.sh target/web-site
(cd bindings/js && node --test test/)

log "envelope vectors, independent Python implementation"
python3 scripts/verify_vectors.py docs/envelope-vectors.json

log "bindings: Python, Kotlin and Swift against sealcast serve"
scripts/bindings.sh

log "all tests passed (target/: $(du -sh target | cut -f1))"
