#!/usr/bin/env bash
# A real single-node CQL server for tests and local work: Apache Cassandra 5.0 (the jars from
# Maven Central, fetched once into a cache) on the machine's Java 17, on free loopback ports.
# ScyllaDB itself cannot be installed here; the scylla driver speaks the same protocol (v4) to
# both, and only shard-aware routing is left unexercised.
#
#   deploy/cql-node.sh start DIR   # node files in DIR; returns once the node answers CQL and
#                                  # prints the server settings that point at it
#   deploy/cql-node.sh stop DIR    # stops it
#
# Settings (environment): CQL_NODE_VERSION (5.0.8), CQL_NODE_HEAP (2g: the test suite makes a
# keyspace per test, and every table costs heap), CQL_NODE_PREPARED_CACHE (256MiB: the
# server's prepared-statement cache, which holds every test keyspace's statements),
# CQL_NODE_CACHE (~/.cache/douyin-lite/cassandra-VERSION), CQL_NODE_TIMEOUT (180 s),
# CQL_NODE_TLS (0; 1: clients must use TLS, with a test CA made here; its PEM is printed as
# DOUYIN_STORE__CQL__TLS_CA_FILE).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${CQL_NODE_VERSION:-5.0.8}
HEAP=${CQL_NODE_HEAP:-2g}
PREPARED_CACHE=${CQL_NODE_PREPARED_CACHE:-256MiB}
CACHE=${CQL_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/douyin-lite/cassandra-$VERSION}
TIMEOUT=${CQL_NODE_TIMEOUT:-180}
KEYSPACE=douyin_lite
TLS=${CQL_NODE_TLS:-0}
TLS_PASS=douyin-lite-test

# shellcheck source=deploy/lib.sh
source deploy/lib.sh
service_args "$@"

# The jars of cassandra-all and everything it needs at run time, once.
fetch() {
  [ -f "$CACHE/.complete" ] && return
  command -v mvn >/dev/null 2>&1 || { echo "Maven (mvn) is required to fetch Cassandra" >&2; exit 1; }
  command -v java >/dev/null 2>&1 || { echo "Java 17 is required to run Cassandra" >&2; exit 1; }
  echo "fetching Apache Cassandra $VERSION from Maven Central into $CACHE" >&2
  local pom
  pom=$(mktemp -d)
  cat >"$pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>douyin-lite</groupId>
  <artifactId>cql-node</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  mkdir -p "$CACHE/lib"
  (cd "$pom" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$CACHE/lib")
  rm -rf "$pom"
  touch "$CACHE/.complete"
}

# True once the node answers a CQL OPTIONS request (protocol v4) with SUPPORTED ($2 = 1: over
# TLS, without checking the certificate).
answers_cql() {
  python3 - "$1" "${2:-0}" <<'EOF'
import socket, ssl, struct, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    if sys.argv[2] == "1":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    s.sendall(struct.pack(">BBhBi", 0x04, 0, 1, 0x05, 0))
    head = s.recv(9)
    sys.exit(0 if len(head) == 9 and head[0] == 0x84 and head[4] == 0x06 else 1)
except OSError:
    sys.exit(1)
EOF
}

# A test CA and the node's certificate (for 127.0.0.1) signed by it, made with the JDK's
# keytool: tls/node.p12 for the node, tls/ca.pem for clients.
tls_files() {
  local t="$DIR/tls" k=(-storepass "$TLS_PASS" -keypass "$TLS_PASS" -storetype PKCS12)
  rm -rf "$t" && mkdir -p "$t"
  keytool -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity 3650 -dname "CN=douyin-lite test CA" \
    -ext bc:c -keystore "$t/ca.p12" "${k[@]}" >/dev/null 2>&1
  keytool -exportcert -rfc -alias ca -keystore "$t/ca.p12" -storepass "$TLS_PASS" -file "$t/ca.pem" >/dev/null 2>&1
  keytool -genkeypair -alias node -keyalg RSA -keysize 2048 -validity 3650 -dname "CN=127.0.0.1" \
    -keystore "$t/node.p12" "${k[@]}" >/dev/null 2>&1
  keytool -certreq -alias node -keystore "$t/node.p12" -storepass "$TLS_PASS" -file "$t/node.csr" >/dev/null 2>&1
  keytool -gencert -alias ca -keystore "$t/ca.p12" -storepass "$TLS_PASS" -infile "$t/node.csr" \
    -outfile "$t/node.pem" -rfc -validity 3650 -ext SAN=ip:127.0.0.1 -ext KU=digitalSignature,keyEncipherment \
    -ext EKU=serverAuth >/dev/null 2>&1
  keytool -importcert -noprompt -alias ca -file "$t/ca.pem" -keystore "$t/node.p12" "${k[@]}" >/dev/null 2>&1
  keytool -importcert -noprompt -alias node -file "$t/node.pem" -keystore "$t/node.p12" "${k[@]}" >/dev/null 2>&1
}

start() {
  fetch
  if [ -f "$DIR/node.pid" ] && kill -0 "$(cat "$DIR/node.pid")" 2>/dev/null; then
    echo "a node already runs in $DIR" >&2
    cat "$DIR/settings.env"
    return
  fi
  local cql storage
  cql=$(free_port)
  storage=$(free_port)
  mkdir -p "$DIR/data" "$DIR/commitlog" "$DIR/saved_caches" "$DIR/hints" "$DIR/cdc_raw"
  cat >"$DIR/cassandra.yaml" <<EOF
cluster_name: douyin-lite-test
num_tokens: 8
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $storage
start_native_transport: true
native_transport_port: $cql
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$storage"
endpoint_snitch: SimpleSnitch
commitlog_sync: periodic
commitlog_sync_period: 10000ms
data_file_directories:
  - $DIR/data
commitlog_directory: $DIR/commitlog
saved_caches_directory: $DIR/saved_caches
hints_directory: $DIR/hints
cdc_raw_directory: $DIR/cdc_raw
concurrent_compactors: 1
# the test suite prepares each statement once per test keyspace (about 50 each, a hundred
# keyspaces alive at once): the default cache (10 MiB at this heap) evicts them, and a
# statement evicted again right after the driver re-prepares it fails its request
prepared_statements_cache_size: ${PREPARED_CACHE}
# test keyspaces come and go: no snapshot of each dropped or truncated table
auto_snapshot: false
EOF
  if [ "$TLS" = 1 ]; then
    tls_files
    cat >>"$DIR/cassandra.yaml" <<EOF
client_encryption_options:
  enabled: true
  optional: false
  keystore: $DIR/tls/node.p12
  keystore_password: $TLS_PASS
  store_type: PKCS12
EOF
  fi
  cat >"$DIR/logback.xml" <<EOF
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$DIR/system.log</file>
    <encoder><pattern>%level %date{ISO8601} [%thread] %logger{20} %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
EOF
  # Cassandra's own conf/jvm17-server.options (GC and module access), a small heap, and
  # start-up shortcuts for a one-node test ring.
  local jvm=(
    -Xms"$HEAP" -Xmx"$HEAP" -Xss512k
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    -Dcassandra.config="file://$DIR/cassandra.yaml"
    -Dcassandra.storagedir="$DIR"
    -Dcassandra-foreground=yes
    -Dlogback.configurationFile="$DIR/logback.xml"
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.ring_delay_ms=100
    -Dcassandra.superuser_setup_delay_ms=0
  )
  nohup java "${jvm[@]}" -cp "$CACHE/lib/*" org.apache.cassandra.service.CassandraDaemon \
    >"$DIR/stdout.log" 2>&1 </dev/null &
  echo $! >"$DIR/node.pid"
  local pid waited=0
  pid=$(cat "$DIR/node.pid")
  until answers_cql "$cql" "$TLS"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the CQL node exited during start-up; the end of its log:" >&2
      tail -30 "$DIR/system.log" "$DIR/stdout.log" >&2 2>/dev/null || true
      exit 1
    fi
    if [ "$waited" -ge "$TIMEOUT" ]; then
      echo "the CQL node did not answer within ${TIMEOUT}s; the end of its log:" >&2
      tail -30 "$DIR/system.log" >&2 || true
      kill "$pid" 2>/dev/null || true
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  local version
  version=$(grep -o 'Cassandra version: [^ ]*' "$DIR/system.log" | head -1 || true)
  echo "CQL node up in ${waited}s on 127.0.0.1:$cql (Apache ${version:-Cassandra $VERSION})" >&2
  cat >"$DIR/settings.env" <<EOF
DOUYIN_STORE__BACKEND=scylla
DOUYIN_STORE__CQL__CONTACT_POINTS=127.0.0.1:$cql
DOUYIN_STORE__CQL__LOCAL_DATACENTER=datacenter1
DOUYIN_STORE__CQL__KEYSPACE=$KEYSPACE
EOF
  if [ "$TLS" = 1 ]; then echo "DOUYIN_STORE__CQL__TLS_CA_FILE=$DIR/tls/ca.pem" >>"$DIR/settings.env"; fi
  cat "$DIR/settings.env"
}

stop() {
  [ -f "$DIR/node.pid" ] || { echo "no node runs in $DIR" >&2; return; }
  local pid
  pid=$(cat "$DIR/node.pid")
  stop_pid "$pid" 30
  rm -f "$DIR/node.pid"
}

"$CMD"
