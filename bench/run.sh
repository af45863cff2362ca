#!/usr/bin/env bash
# The benchmark runner: builds in release, starts a Redis of its own and the server on
# loopback, loads the bench data set (seed --bench), runs every scenario with wrk (and k6
# where installed), checks the durable records, and writes bench/RESULTS.md.
#
#   bash bench/run.sh                      # the full run (about 10 minutes)
#   BENCH_SCALE=0.05 BENCH_DURATION=3s bash bench/run.sh   # a quick try
#
# Settings (environment): BENCH_DURATION (10s), BENCH_WARMUP (5s), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2), BENCH_SCALE (1 = 10k users, 100k videos, 1M likes, ...),
# BENCH_SCENARIOS (all; space-separated names of bench/wrk/*.lua), BENCH_OUT (bench/RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-5s}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
SCALE=${BENCH_SCALE:-1}
OUT=${BENCH_OUT:-bench/RESULTS.md}
READS="feed_anon feed_user user_info publish_list favorite_list comment_list follow_list follower_list friend_list chat_poll"
WRITES="like_toggle comment_post follow message_send register_login mixed"
SCENARIOS=${BENCH_SCENARIOS:-"$READS like $WRITES"}

# shellcheck source=bench/lib.sh
source bench/lib.sh douyin-bench
RESULTS=$WORK/results.jsonl
: > "$RESULTS"
BPORT=$(free_port)

export DOUYIN_LOG__LEVEL=${DOUYIN_LOG__LEVEL:-warn}
SERVE=("$BIN/douyin-lite" --data-dir "$WORK/data" --redis-url "$REDIS" --bind "127.0.0.1:$PORT")

echo "== seeding (scale $SCALE)" >&2
SEED_START=$(date +%s.%N)
"${SERVE[@]}" seed --bench --scale "$SCALE" --out "$WORK/bench-data" | tee "$WORK/seed.txt" >&2
SEED_SECS=$(python3 -c "import time; print(round(time.time() - $SEED_START, 1))")
export BENCH_DATA=$WORK/bench-data
echo "== loading redis from the durable store (rebuild-cache)" >&2
REBUILD_START=$(date +%s.%N)
"${SERVE[@]}" rebuild-cache >&2
REBUILD_SECS=$(python3 -c "import time; print(round(time.time() - $REBUILD_START, 1))")

SERVER_PID=""
start_server() {
  "${SERVE[@]}" serve >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server did not become ready; log:" >&2
  tail -20 "$WORK/server.log" >&2
  exit 1
}
stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Sum of a metric family's samples (e.g. every douyin_api_errors_total series).
metric_sum() {
  curl -fs "http://127.0.0.1:$PORT/metrics" |
    awk -v m="$1" 'index($0, m) == 1 && $0 !~ /^#/ {s += $NF} END {printf "%d", s}'
}

# run_wrk NAME URL SCRIPT: one measured run, appended to the results as JSON.
run_wrk() {
  local name=$1 url=$2 script=$3 pid=$4
  local errs_before rt_before errs_after rt_after out
  errs_before=$([ "$name" = baseline ] && echo 0 || metric_sum douyin_api_errors_total)
  rt_before=$([ "$name" = baseline ] && echo 0 || metric_sum douyin_redis_round_trips_total)
  out=$(BENCH_WRK=$ROOT/bench/wrk wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s \
    -s "$script" "$url" 2>&1) || { echo "$out" >&2; exit 1; }
  errs_after=$([ "$name" = baseline ] && echo 0 || metric_sum douyin_api_errors_total)
  rt_after=$([ "$name" = baseline ] && echo 0 || metric_sum douyin_redis_round_trips_total)
  local line
  line=$(echo "$out" | grep '^RESULT ' | sed 's/^RESULT //')
  python3 - "$name" "$line" "$((errs_after - errs_before))" "$((rt_after - rt_before))" \
    "$(rss_kb "$pid")" >>"$RESULTS" <<'EOF'
import json, sys
name, line, api_errors, round_trips, rss = sys.argv[1:]
r = json.loads(line)
r.update(name=name, api_errors=int(api_errors), round_trips=int(round_trips), rss_kb=int(rss))
print(json.dumps(r))
EOF
  echo "   $name: $(echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f req/s, p99 %.2f ms" % (r["rps"], r["p99_us"] / 1000))')" >&2
}

start_server
echo "== warm-up" >&2
for s in feed_user feed_anon mixed; do
  BENCH_WRK=$ROOT/bench/wrk wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "bench/wrk/$s.lua" \
    "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
done

# The baseline body: a real logged-in feed page (30 videos) of this data set.
TOKEN=$(awk '!/^#/ {print $2; exit}' "$BENCH_DATA/users.txt")
curl -fs "http://127.0.0.1:$PORT/douyin/feed/?token=$TOKEN" -o "$WORK/feed-page.json"
echo "== baseline ($(wc -c <"$WORK/feed-page.json") bytes)" >&2
"$BIN/bench-baseline" "$WORK/feed-page.json" "127.0.0.1:$BPORT" 2>>"$WORK/baseline.log" &
BASE_PID=$!
PIDS+=("$BASE_PID")
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$BPORT/" >/dev/null 2>&1 && break; sleep 0.1; done
BENCH_WRK=$ROOT/bench/wrk wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s bench/wrk/baseline.lua \
  "http://127.0.0.1:$BPORT" >/dev/null 2>&1 || true
run_wrk baseline "http://127.0.0.1:$BPORT" bench/wrk/baseline.lua "$BASE_PID"
kill "$BASE_PID" 2>/dev/null || true

LIKE_CHECK="{}"
for s in $SCENARIOS; do
  echo "== $s" >&2
  if [ "$s" = like ]; then
    stop_server
    before=$("$BIN/douyin-lite" --data-dir "$WORK/data" --redis-url "$REDIS" check)
    start_server
    run_wrk like "http://127.0.0.1:$PORT" bench/wrk/like.lua "$SERVER_PID"
    stop_server
    after=$("$BIN/douyin-lite" --data-dir "$WORK/data" --redis-url "$REDIS" check) || true
    LIKE_CHECK=$(python3 -c 'import json,sys; print(json.dumps({"before": json.loads(sys.argv[1]), "after": json.loads(sys.argv[2])}))' "$before" "$after")
    start_server
    continue
  fi
  run_wrk "$s" "http://127.0.0.1:$PORT" "bench/wrk/$s.lua" "$SERVER_PID"
done

K6="not installed"
if need k6; then
  K6="installed"
  for s in feed_user mixed; do
    echo "== k6 $s" >&2
    k6 run -q --summary-export "$WORK/k6-$s.json" -e BASE="http://127.0.0.1:$PORT" \
      -e DATA="$BENCH_DATA" -e SCENARIO="$s" -e VUS="$CONNS" -e DURATION="$DURATION" \
      bench/k6/scenarios.js >&2 || true
  done
fi

FINAL_RSS=$(rss_kb "$SERVER_PID")
METRICS=$(curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^douyin_(near_cache|store_fsyncs|store_durable|cache_reloads)' || true)
stop_server
FINAL_CHECK=$("$BIN/douyin-lite" --data-dir "$WORK/data" --redis-url "$REDIS" check) || true

python3 bench/report.py "$RESULTS" "$OUT" \
  "$(cat "$WORK/seed.txt")" "$SEED_SECS" "$REBUILD_SECS" "$LIKE_CHECK" "$FINAL_CHECK" \
  "$FINAL_RSS" "$CONNS" "$THREADS" "$DURATION" "$K6" "$METRICS" "$(wc -c <"$WORK/feed-page.json")"
echo "== wrote $OUT" >&2
