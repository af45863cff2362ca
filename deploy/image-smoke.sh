#!/usr/bin/env bash
# Builds the image with podman from deploy/Dockerfile and smoke-tests it, on machines where no
# base image can be pulled and no Docker engine runs:
#   - the runtime base (debian:bookworm-slim) is made here: debootstrap (minbase) from Debian's
#     mirror, imported into podman and tagged as that name (cached in ~/.cache/douyin-lite);
#   - the Dockerfile's build stage needs the rust image, which cannot be pulled: it is replaced
#     (podman build --build-context build=DIR) by the binary the tests just built;
#   - the container then runs as it would in production (read-only root, user 10001, data in a
#     volume) against the test Redis: /readyz, a registration, a publish by URL, the feed, its
#     HEALTHCHECK, and SIGTERM ending it with status 0.
#
#   deploy/image-smoke.sh [BINARY]     # BINARY: target/debug/douyin-lite by default
#
# If podman cannot start even a bare container on this machine, it says why and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/debug/douyin-lite}
REDIS_URL=${DOUYIN_REDIS__URL:-redis://127.0.0.1:6379}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/douyin-lite
# shellcheck source=deploy/lib.sh
source deploy/lib.sh

if ! command -v podman >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  apt_install podman debootstrap
fi
WORK=$(mktemp -d /tmp/douyin-image.XXXXXX)
NAME=douyin-smoke-$$
cleanup() {
  podman rm -f "$NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK" 2>/dev/null || as_root rm -rf "$WORK"
}
trap cleanup EXIT
# containers here may not set resource limits of their own (runc: "error setting rlimits")
printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
export CONTAINERS_CONF=$WORK/containers.conf

BASE=docker.io/library/debian:bookworm-slim
if ! podman image exists "$BASE"; then
  TAR=$CACHE/debian-bookworm-minbase.tar
  if [ ! -s "$TAR" ]; then
    echo "making the base image with debootstrap (bookworm, minbase)" >&2
    mkdir -p "$CACHE"
    as_root debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >/dev/null
    as_root tar -C "$WORK/rootfs" -cf "$TAR.tmp" . && mv "$TAR.tmp" "$TAR"
    as_root rm -rf "$WORK/rootfs"
  fi
  podman import -q "$TAR" "$BASE" >/dev/null
fi
if ! podman run --rm --network none "$BASE" true 2>"$WORK/run.err"; then
  echo "image smoke test SKIPPED: podman cannot start a container on this machine:" >&2
  cat "$WORK/run.err" >&2
  exit 0
fi

echo "== podman build (deploy/Dockerfile; the build stage replaced by $BIN)" >&2
mkdir -p "$WORK/ctx/src/target/release"
cp "$BIN" "$WORK/ctx/src/target/release/douyin-lite"
podman build -q --format docker --pull=never --build-context build="$WORK/ctx" \
  -f deploy/Dockerfile -t localhost/douyin-lite:smoke . >/dev/null

echo "== the container, read-only, as user 10001" >&2
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/data" && chmod 777 "$WORK/data"
podman run -d --name "$NAME" --network host --read-only -v "$WORK/data:/data" \
  -e DOUYIN_SERVER__BIND="127.0.0.1:$PORT" -e DOUYIN_SERVER__PUBLIC_URL="http://127.0.0.1:$PORT" \
  -e DOUYIN_REDIS__URL="$REDIS_URL" -e DOUYIN_REDIS__KEY_PREFIX="smoke$$:" \
  localhost/douyin-lite:smoke >/dev/null
API=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -fs "$API/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
fail() { echo "image smoke test FAILED: $*" >&2; podman logs "$NAME" 2>&1 | tail -20 >&2; exit 1; }
curl -fs "$API/readyz" >/dev/null || fail "never ready"
reg=$(curl -fs -X POST "$API/douyin/user/register/?username=smoke$$&password=secret123")
token=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["status_code"] == 0, d; print(d["token"])' "$reg") ||
  fail "register: $reg"
pub=$(curl -fs -X POST -H 'Content-Type: application/json' \
  -d "{\"token\":\"$token\",\"url\":\"https://cdn.example.com/smoke.mp4\",\"title\":\"smoke\"}" \
  "$API/douyin/publish/actionUrl/")
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["status_code"] == 0, d' "$pub" || fail "publish: $pub"
feed=$(curl -fs "$API/douyin/feed/")
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert any(v["title"] == "smoke" for v in d["video_list"]), d' "$feed" ||
  fail "feed: $feed"
[ "$(podman exec "$NAME" id -u)" = 10001 ] || fail "not running as user 10001"
podman exec "$NAME" sh -c 'touch /probe' 2>/dev/null && fail "the root filesystem is writable"
podman exec "$NAME" ffprobe -version >/dev/null || fail "no ffprobe in the image"
podman healthcheck run "$NAME" >/dev/null || fail "HEALTHCHECK did not pass"
podman stop -t 30 "$NAME" >/dev/null
status=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$status" = 0 ] || fail "SIGTERM ended it with status $status"
echo "image smoke test: built, served, healthy, stopped cleanly"
