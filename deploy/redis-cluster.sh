#!/usr/bin/env bash
# A local Redis Cluster for tests and local work: three primaries (redis-server
# --cluster-enabled yes, no replicas) on free loopback ports, their files in a directory.
#
#   deploy/redis-cluster.sh start DIR   # returns once the cluster is ok (all 16384 slots served)
#                                       # and prints DOUYIN_REDIS__URL=redis-cluster://...
#   deploy/redis-cluster.sh stop DIR    # stops the three nodes
#
# Settings (environment): REDIS_CLUSTER_TIMEOUT (30 s), REDIS_CLUSTER_HOSTNAME (empty: nodes
# announce addresses; a name, e.g. localhost: they announce it and clients are sent by name, as
# in the compose stack).
set -euo pipefail
cd "$(dirname "$0")/.."

TIMEOUT=${REDIS_CLUSTER_TIMEOUT:-30}
HOSTNAME_ARGS=()
if [ -n "${REDIS_CLUSTER_HOSTNAME:-}" ]; then
  HOSTNAME_ARGS=(--cluster-announce-hostname "$REDIS_CLUSTER_HOSTNAME" --cluster-preferred-endpoint-type hostname)
fi
NODES=3

# shellcheck source=deploy/lib.sh
source deploy/lib.sh
service_args "$@"

# A port whose cluster bus port (port + 10000) is free too.
free_port_and_bus() {
  python3 - <<'EOF'
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    if p + 10000 > 65535:
        a.close(); continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000))
    except OSError:
        a.close(); continue
    a.close(); b.close(); print(p); break
EOF
}

settings() {
  local ports host rest="" p
  mapfile -t ports <"$DIR/ports"
  host=${REDIS_CLUSTER_HOSTNAME:-127.0.0.1}
  for p in "${ports[@]:1}"; do rest="$rest&node=$host:$p"; done
  echo "DOUYIN_REDIS__URL=redis-cluster://$host:${ports[0]}?${rest#&}"
}

start() {
  command -v redis-server >/dev/null 2>&1 || { echo "redis-server is required" >&2; exit 1; }
  if [ -f "$DIR/ports" ] && redis-cli -p "$(head -1 "$DIR/ports")" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
    echo "a Redis Cluster already runs in $DIR" >&2
    settings
    return
  fi
  # a cluster stopped before left its node tables (nodes.conf) naming its old ports: start anew
  rm -rf "$DIR"/node*
  : >"$DIR/ports"
  local i port
  for i in $(seq 1 $NODES); do
    port=$(free_port_and_bus)
    mkdir -p "$DIR/node$i"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$DIR/node$i" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --save "" --appendonly no --logfile "$DIR/node$i/redis.log" --pidfile "$DIR/node$i/redis.pid" \
      "${HOSTNAME_ARGS[@]}"
    echo "$port" >>"$DIR/ports"
  done
  local waited=0
  while read -r port; do
    until redis-cli -p "$port" ping >/dev/null 2>&1; do
      [ "$waited" -ge $((TIMEOUT * 10)) ] && { echo "redis-server on $port did not come up" >&2; exit 1; }
      sleep 0.1; waited=$((waited + 1))
    done
  done <"$DIR/ports"
  local addrs=()
  while read -r port; do addrs+=("127.0.0.1:$port"); done <"$DIR/ports"
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/create.log" 2>&1 \
    || { echo "redis-cli --cluster create failed:" >&2; tail -20 "$DIR/create.log" >&2; exit 1; }
  # every node must agree that all slots are served
  while read -r port; do
    until redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; do
      [ "$waited" -ge $((TIMEOUT * 10)) ] && { echo "the cluster did not become ok" >&2; exit 1; }
      sleep 0.1; waited=$((waited + 1))
    done
  done <"$DIR/ports"
  echo "Redis Cluster up: 3 primaries on 127.0.0.1 ports $(tr '\n' ' ' <"$DIR/ports")" >&2
  settings
}

stop() {
  [ -f "$DIR/ports" ] || { echo "no Redis Cluster runs in $DIR" >&2; return; }
  local i pid
  for i in $(seq 1 $NODES); do
    [ -f "$DIR/node$i/redis.pid" ] || continue
    pid=$(cat "$DIR/node$i/redis.pid")
    stop_pid "$pid"
  done
  rm -f "$DIR/ports"
}

"$CMD"
