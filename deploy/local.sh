#!/usr/bin/env bash
# Local set-up for douyin-lite: installs what is missing, makes sure a Redis is reachable, then
# serves (with the embedded defaults and demo content) or runs the tests.
#
#   ./deploy/local.sh serve   # build and run the server on 0.0.0.0:8080, data in ./data
#   ./deploy/local.sh test    # run the whole test suite (embedded store, local media, one
#                             # Redis; then again on a real CQL node, a real S3 server and a
#                             # Redis Cluster), check the deployment files and the image, then
#                             # fuzz the API
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_URL="${DOUYIN_REDIS__URL:-redis://127.0.0.1:6379}"
DATA_DIR="${DOUYIN_STORE__DATA_DIR:-./data}"

# shellcheck source=deploy/lib.sh
source deploy/lib.sh

ensure_tools() {
  local pkgs=()
  command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
  { command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; } || pkgs+=(ffmpeg)
  if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi
  command -v cargo >/dev/null 2>&1 || { echo "cargo is required: install Rust from rustup.rs" >&2; exit 1; }
}

# Starts a local redis-server on 127.0.0.1:6379 when nothing answers at REDIS_URL.
# $1: directory for its data ("" = no persistence, for tests).
ensure_redis() {
  if redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then return; fi
  case "$REDIS_URL" in
    redis://127.0.0.1:6379*|redis://localhost:6379*) ;;
    *) echo "Redis at $REDIS_URL does not answer" >&2; exit 1 ;;
  esac
  if [ -n "$1" ]; then
    mkdir -p "$1"
    echo "starting redis-server with persistence in $1" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$(cd "$1" && pwd)" \
      --appendonly yes --save "" --logfile redis.log
  else
    echo "starting a throwaway redis-server for the tests" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --logfile /tmp/douyin-lite-test-redis.log
  fi
  for _ in $(seq 1 50); do redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server did not come up" >&2; exit 1
}

case "${1:-}" in
  serve)
    shift
    ensure_tools
    ensure_redis "$DATA_DIR/redis"
    cargo build --release
    exec ./target/release/douyin-lite serve --bind "${BIND:-0.0.0.0:8080}" --data-dir "$DATA_DIR" --redis-url "$REDIS_URL" --demo "$@"
    ;;
  test)
    shift
    ensure_tools
    ensure_redis ""
    if cargo nextest --version >/dev/null 2>&1; then
      cargo nextest run --no-fail-fast "$@"
    else
      cargo test --all-targets "$@"
    fi
    # the end-to-end suite and the store and media trait suites again, on the cluster stack:
    # the CQL store of a real node (Apache Cassandra from Maven Central), media in a real S3
    # server (s3s-fs from crates.io, signatures checked) and a 3-primary Redis Cluster
    # (redis-server), all started and stopped here
    cql_dir="$(mktemp -d /tmp/douyin-lite-cql.XXXXXX)"
    s3_dir="$(mktemp -d /tmp/douyin-lite-s3.XXXXXX)"
    rc_dir="$(mktemp -d /tmp/douyin-lite-rc.XXXXXX)"
    stop_cluster_stack() {
      bash deploy/cql-node.sh stop "$cql_dir" >/dev/null 2>&1 || true
      bash deploy/s3-server.sh stop "$s3_dir" >/dev/null 2>&1 || true
      bash deploy/redis-cluster.sh stop "$rc_dir" >/dev/null 2>&1 || true
    }
    trap stop_cluster_stack EXIT
    cql_env="$(bash deploy/cql-node.sh start "$cql_dir")"
    cql_point="$(sed -n 's/^DOUYIN_STORE__CQL__CONTACT_POINTS=//p' <<<"$cql_env")"
    bash deploy/s3-server.sh start "$s3_dir" >/dev/null
    rc_url="$(bash deploy/redis-cluster.sh start "$rc_dir" | sed -n 's/^DOUYIN_REDIS__URL=//p')"
    echo "running the end-to-end suite on the CQL store at $cql_point, media in S3, Redis Cluster $rc_url" >&2
    export CQL_TEST_NODE="$cql_point" S3_TEST_DIR="$s3_dir" REDIS_TEST_URL="$rc_url"
    if cargo nextest --version >/dev/null 2>&1; then
      cargo nextest run --no-fail-fast --test api "$@"
    else
      cargo test --test api "$@"
    fi
    unset CQL_TEST_NODE S3_TEST_DIR REDIS_TEST_URL
    stop_cluster_stack
    trap - EXIT
    # static checks of the deployment files
    bash deploy/check.sh
    # the image, built with podman from a base made here, serving the binary the tests built
    bash deploy/image-smoke.sh
    # every endpoint of /openapi.json fuzzed against the binary the tests just built
    bash deploy/schemathesis.sh
    ;;
  *)
    echo "usage: $0 serve|test" >&2
    exit 2
    ;;
esac
