#!/usr/bin/env bash
# Builds the uniffi library, generates the Kotlin, Swift and Python
# bindings, and runs each language's test against a real `sealcast serve`
# on a loopback port. Installs what is missing (JNA from Debian, the Kotlin
# compiler from npm, a Debian trixie chroot with swiftlang for Swift) into
# a cache directory outside the repository.
#
#   scripts/bindings.sh                 # all three
#   SKIP_SWIFT=1 SKIP_KOTLIN=1 scripts/bindings.sh
#   BINDINGS_CACHE=/path scripts/bindings.sh   # default ~/.cache/sealcast-bindings
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${BINDINGS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sealcast-bindings}
OUT=$ROOT/target/bindings
KOTLIN_VERSION=2.4.20
KC=$CACHE/kotlin/node_modules/kotlin-compiler
T0=$SECONDS
lap() { echo "== bindings [$((SECONDS - T0))s] $*"; }
mkdir -p "$CACHE"

lap "build library, server and bindgen"
cargo build --quiet --locked -p sealcast-ffi -p sealcast-server
cargo build --quiet --locked --manifest-path bindings/bindgen/Cargo.toml
LIB=$ROOT/target/debug/libsealcast_ffi.so
BINDGEN=$ROOT/bindings/bindgen/target/debug/uniffi-bindgen

lap "generate"
rm -rf "$OUT"
for lang in kotlin swift python; do
  "$BINDGEN" generate --no-format --library "$LIB" --language "$lang" --out-dir "$OUT/$lang" >/dev/null
done
# The Python package closes live clients at exit (see the file).
cat bindings/python/exit_hook.py >> "$OUT/python/sealcast.py"

lap "start sealcast serve"
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ROOT/target/debug/sealcast" serve --port "$PORT" --config tests/bindings/sealcast.toml --data-dir "$DATA/data" \
  >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

status=0
lap "python"
cp "$LIB" "$OUT/python/"
python3 tests/bindings/test_sealcast.py "$OUT/python" "$PORT" || status=1
lap "python: randomized document convergence (two seeds)"
for _ in 1 2; do python3 tests/bindings/doc_convergence.py "$OUT/python" "$PORT" || status=1; done

if [ "${SKIP_KOTLIN:-0}" != 1 ]; then
  lap "kotlin: toolchain"
  if [ ! -f /usr/share/java/jna.jar ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjna-java default-jdk-headless >/dev/null
  fi
  [ -x "$KC/bin/kotlinc" ] || npm install --silent --prefix "$CACHE/kotlin" "kotlin-compiler@$KOTLIN_VERSION"
  lap "kotlin: compile"
  CP=/usr/share/java/jna.jar
  JAVA_OPTS="-Xmx1g -XX:TieredStopAtLevel=1" "$KC/bin/kotlinc" -nowarn -cp "$CP" \
    "$OUT/kotlin/io/sealcast/sealcast.kt" tests/bindings/Main.kt tests/bindings/Exit.kt -d "$OUT/kotlin-classes"
  lap "kotlin: run"
  java -Djna.library.path="$(dirname "$LIB")" -cp "$OUT/kotlin-classes:$CP:$KC/lib/kotlin-stdlib.jar" \
    MainKt "$PORT" || status=1
fi

if [ "${SKIP_SWIFT:-0}" != 1 ]; then
  R=$CACHE/trixie-root
  if [ ! -x "$R/usr/bin/swiftc" ]; then
    lap "swift: one-time Debian trixie chroot with swiftlang (~1 min, 3.3 GB)"
    rm -rf "$R"
    if ! command -v debootstrap >/dev/null; then
      mkdir -p "$CACHE/dbs" && (cd "$CACHE/dbs" && apt-get download -q debootstrap && dpkg-deb -x debootstrap_*.deb root)
      export DEBOOTSTRAP_DIR=$CACHE/dbs/root/usr/share/debootstrap
      DBS="bash $CACHE/dbs/root/usr/sbin/debootstrap"
    else
      DBS=debootstrap
    fi
    $DBS --variant=minbase trixie "$R" http://deb.debian.org/debian >/dev/null
    cp /etc/resolv.conf "$R/etc/resolv.conf"
    chroot "$R" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends swiftlang libc6-dev >/dev/null'
  fi
  lap "swift: compile and run (in the chroot; the server stays on the host's loopback)"
  W=$R/root/sealcast-swift
  rm -rf "$W" && mkdir -p "$W"
  cp "$OUT"/swift/* tests/bindings/main.swift "$LIB" "$W/"
  unshare --mount --pid --fork --mount-proc="$R/proc" chroot "$R" sh -c "cd /root/sealcast-swift &&
    swiftc -module-name SealcastTests -Xcc -fmodule-map-file=\$PWD/SealcastFFI.modulemap -I \$PWD -L \$PWD \
      -lsealcast_ffi Sealcast.swift main.swift -o swifttest && LD_LIBRARY_PATH=\$PWD ./swifttest $PORT" || status=1
fi

lap "done (status $status)"
exit $status
