#!/usr/bin/env bash
# Builds the browser package: the core compiled to WebAssembly
# (bindings/wasm, cargo profile `web`), its JS glue (wasm-bindgen, ES module
# target "web", which Node can load too), and the TypeScript layer
# (bindings/js, tsc) into bindings/js/dist. Installs what it needs when
# missing: the wasm32 target, wasm-bindgen-cli at the exact version of the
# wasm-bindgen crate in Cargo.lock (built from source with cargo), and the
# npm dev dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

rustup target list --installed | grep -qx wasm32-unknown-unknown || {
    log "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
}
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
    log "cargo install wasm-bindgen-cli $want (had: ${have:-none})"
    # Not --locked: the tool's own lock file names crate versions the
    # registry mirror here lacks; the CLI only has to match the crate.
    cargo install wasm-bindgen-cli --version "$want"
fi
[ -d bindings/js/node_modules/typescript ] || {
    log "npm ci in bindings/js"
    (cd bindings/js && npm ci --no-audit --no-fund)
}

log "cargo build -p sealcast-wasm (wasm32, profile web)"
cargo build --locked -p sealcast-wasm --target wasm32-unknown-unknown --profile web
# The glue goes beside the TypeScript sources (generated, not committed),
# so tsc type-checks against its .d.ts; then it is copied next to the output.
rm -rf bindings/js/dist bindings/js/src/wasm
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir bindings/js/src/wasm --out-name sealcast_wasm \
    target/wasm32-unknown-unknown/web/sealcast_wasm.wasm

log "tsc (bindings/js)"
(cd bindings/js && node_modules/.bin/tsc -p tsconfig.json)
cp -r bindings/js/src/wasm bindings/js/dist/wasm
ls -l bindings/js/dist bindings/js/dist/wasm
