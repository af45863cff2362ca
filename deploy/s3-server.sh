#!/usr/bin/env bash
# A real S3-compatible server for tests and local work: s3s-fs (crates.io, built once into a
# cache) with its objects in a directory, on a free loopback port, with SigV4 signatures checked
# against keys made here (an unsigned request is refused).
#
#   deploy/s3-server.sh start DIR   # objects and keys in DIR; returns once the server answers and
#                                   # prints the server settings that point at it
#   deploy/s3-server.sh stop DIR    # stops it
#
# The settings are those of the S3 media backend (media.backend = "s3"); the tests read them
# from DIR/settings.env (S3_TEST_DIR=DIR). Settings (environment): S3_SERVER_CACHE
# (~/.cache/douyin-lite/s3s-fs-0.14.1), S3_SERVER_TIMEOUT (30 s).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.14.1 # newer releases need a newer rustc than the project's
CACHE=${S3_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/douyin-lite/s3s-fs-$VERSION}
TIMEOUT=${S3_SERVER_TIMEOUT:-30}
BUCKET=douyin-lite

# shellcheck source=deploy/lib.sh
source deploy/lib.sh
service_args "$@"

fetch() {
  [ -x "$CACHE/bin/s3s-fs" ] && return
  command -v cargo >/dev/null 2>&1 || { echo "cargo is required to build s3s-fs" >&2; exit 1; }
  echo "building s3s-fs $VERSION into $CACHE (once)" >&2
  cargo install -q s3s-fs --version "$VERSION" --features binary --locked --root "$CACHE" >&2
}

start() {
  fetch
  if [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
    echo "an S3 server already runs in $DIR" >&2
    cat "$DIR/settings.env"
    return
  fi
  mkdir -p "$DIR/objects"
  umask 077
  [ -s "$DIR/access_key" ] || head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/access_key"
  [ -s "$DIR/secret_key" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/secret_key"
  local port
  port=$(free_port)
  nohup "$CACHE/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
    --access-key "$(cat "$DIR/access_key")" --secret-key "$(cat "$DIR/secret_key")" \
    "$DIR/objects" >"$DIR/server.log" 2>&1 </dev/null &
  echo $! >"$DIR/server.pid"
  local waited=0 pid
  pid=$(cat "$DIR/server.pid")
  # an unsigned request must be answered, and refused
  until code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/") && [ "$code" != 000 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "s3s-fs exited during start-up:" >&2; tail -20 "$DIR/server.log" >&2; exit 1
    fi
    [ "$waited" -ge $((TIMEOUT * 10)) ] && { echo "s3s-fs did not answer within ${TIMEOUT}s" >&2; exit 1; }
    sleep 0.1
    waited=$((waited + 1))
  done
  if [ "$code" = 200 ]; then
    echo "s3s-fs answered an unsigned request: signatures are not checked" >&2; exit 1
  fi
  echo "S3 server (s3s-fs $VERSION) up on 127.0.0.1:$port, signatures checked" >&2
  cat >"$DIR/settings.env" <<EOT
DOUYIN_MEDIA__BACKEND=s3
DOUYIN_MEDIA__S3__ENDPOINT=http://127.0.0.1:$port
DOUYIN_MEDIA__S3__REGION=us-east-1
DOUYIN_MEDIA__S3__BUCKET=$BUCKET
DOUYIN_MEDIA__S3__PATH_STYLE=true
DOUYIN_MEDIA__S3__ACCESS_KEY_FILE=$DIR/access_key
DOUYIN_MEDIA__S3__SECRET_KEY_FILE=$DIR/secret_key
EOT
  cat "$DIR/settings.env"
}

stop() {
  [ -f "$DIR/server.pid" ] || { echo "no S3 server runs in $DIR" >&2; return; }
  local pid
  pid=$(cat "$DIR/server.pid")
  stop_pid "$pid"
  rm -f "$DIR/server.pid"
}

"$CMD"
