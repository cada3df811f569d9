#!/usr/bin/env bash
# The browser demo on loopback: builds the package (scripts/build-web.sh),
# starts `sealcast serve` and the example auth server, which also serves
# the pages, and prints their URLs. Ctrl-C stops both.
#
#   scripts/web-demo.sh            # realtime server on :6001, pages on :6002
#   WS_PORT=7001 WEB_PORT=7002 scripts/web-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ws_port=${WS_PORT:-6001}
web_port=${WEB_PORT:-6002}
app_id=web-demo
app_key=web-demo-key
app_secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')

scripts/build-web.sh
cargo build --locked -q -p sealcast-server -p sealcast-examples --example auth_server
site=target/web-site
scripts/web-site.sh "$site"

data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$data"' EXIT
SEALCAST_APP_ID=$app_id SEALCAST_APP_KEY=$app_key SEALCAST_APP_SECRET=$app_secret SEALCAST_APP_HISTORY='presence-chat-*' \
    target/debug/sealcast serve --port "$ws_port" --data-dir "$data" &
target/debug/examples/auth_server --app-id "$app_id" --app-key "$app_key" --app-secret "$app_secret" \
    --port "$web_port" --site "$site" \
    --site-config "{\"appKey\":\"$app_key\",\"wsHost\":\"127.0.0.1\",\"wsPort\":$ws_port}" &
sleep 1
cat <<URLS

sealcast web demo (open each in two or more tabs):
  chat:     http://127.0.0.1:$web_port/chat.html?room=lobby&user=ann
            http://127.0.0.1:$web_port/chat.html?room=lobby&user=bob
  document: http://127.0.0.1:$web_port/doc.html?doc=welcome&user=ann
            http://127.0.0.1:$web_port/doc.html?doc=welcome&user=bob
The Rust terminal chat joins the same room:
  cargo run -p sealcast-examples --example chat -- --key $app_key --user cli --room lobby --auth http://127.0.0.1:$web_port
URLS
wait
