#!/usr/bin/env bash
# Assembles the web demo's static site into DIR (default target/web-site):
# examples/web's pages, the built package (bindings/js/dist, from
# scripts/build-web.sh) as sealcast/, and the unchanged third-party
# bundles from npm (pusher-js, Quill 2 and quill-cursors) as vendor/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/web-site}
[ -f bindings/js/dist/index.js ] || { echo "run scripts/build-web.sh first" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/vendor"
cp examples/web/*.html examples/web/*.js examples/web/*.css "$dir/"
cp -r bindings/js/dist "$dir/sealcast"
modules=bindings/js/node_modules
cp "$modules/pusher-js/dist/web/pusher.min.js" "$modules/quill/dist/quill.js" "$modules/quill/dist/quill.snow.css" \
    "$modules/quill-cursors/dist/quill-cursors.js" "$dir/vendor/"
