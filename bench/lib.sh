# Shared by bench/run.sh and bench/soak.sh (sourced, from the repository root): installs wrk,
# Redis and curl when missing, builds in release, makes a work directory ($WORK, removed on
# exit), and starts a Redis of its own on a free port ($REDIS). Processes added to PIDS are
# stopped on exit. $1: the work directory's name prefix.
need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need redis-server || ! need curl; then
  echo "installing wrk, redis-server, curl" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk redis-server redis-tools curl >/dev/null
fi

echo "== building (release)" >&2
cargo build --release --bins -q
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

WORK=$(mktemp -d "/tmp/$1.XXXXXX")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
PORT=$(free_port)
REDIS=redis://127.0.0.1:$RPORT
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --zset-max-listpack-entries 32 \
  --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# wrk is one client address: the login/register scenarios measure speed, not the rate limits
export DOUYIN_LIMITS__LOGIN_PER_IP_PER_MIN=0 DOUYIN_LIMITS__LOGIN_PER_NAME_PER_MIN=0 DOUYIN_LIMITS__REGISTER_PER_IP_PER_HOUR=0
