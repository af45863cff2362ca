#!/usr/bin/env bash
# The benchmark runner: builds in release, starts a Redis of its own and the server on
# loopback, and for each scale in BENCH_SCALES loads the bench data set (seed --bench), times
# `rebuild-cache`, and runs the scenarios with wrk; then checks the durable records and writes
# bench/RESULTS.md.
#
# At the first scale (the full run) every read scenario is warmed up on its own, then measured
# in rounds alternating with `bench-baseline` serving a response of that scenario captured from
# the server to the scenario's own requests (its same-size baseline; the report takes the median
# round), every
# scenario runs a second pass (memory must stay flat), and the mixed traffic runs once more
# under vegeta (built from the Go module proxy; k6 is AGPL and not used here). The other scales
# run the feed, like and list scenarios to show the cost as the data grows.
#
#   bash bench/run.sh                                          # scale 1 and 10 (about 50 min)
#   BENCH_SCALES=0.05 BENCH_DURATION=3s bash bench/run.sh      # a quick try
#
# Settings (environment): BENCH_DURATION (10s), BENCH_WARMUP (5s), BENCH_ROUNDS (3: how many
# times each read and its same-size baseline alternate at the first scale), BENCH_REBUILDS (3:
# how many times rebuild-cache runs at each scale, each into an empty Redis; the report takes the
# median), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2), BENCH_LARGE_WARMUP (each read's own warm-up at the other scales: by default
# BENCH_WARMUP times the scale's size against the first's, 50 s at scale 10), BENCH_SCALES
# ("1 10"; 1 = 10k users, 100k videos, 1M likes, ...),
# BENCH_SCENARIOS (every scenario; names of bench/wrk/*.lua), BENCH_LARGE_SCENARIOS (those
# run at the other scales), BENCH_SMALL_NEAR_BYTES (256 MiB, a 1 GiB container's: the
# near-cache bound of the other scales' second feed_user run; 0: not run), BENCH_OUT
# (bench/RESULTS.md). The server runs with its defaults: DOUYIN_NEAR__MAX_BYTES sets the
# near-cache bound (by default from the machine's memory; the report states the bound in use).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
REBUILDS=${BENCH_REBUILDS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
# like.lua keeps four runs' (user, video) pairs apart by thread number, within 16 (both passes,
# the checked run and its warm-up)
[ "$THREADS" -le 4 ] || { echo "BENCH_THREADS must be at most 4" >&2; exit 1; }
SCALES=${BENCH_SCALES:-"1 10"}
OUT=${BENCH_OUT:-bench/RESULTS.md}
READS="feed_anon feed_user user_info publish_list favorite_list comment_list follow_list follower_list friend_list chat_poll"
WRITES="like_toggle comment_post follow message_send register_login mixed"
SCENARIOS=${BENCH_SCENARIOS:-"$READS like $WRITES"}
LARGE=${BENCH_LARGE_SCENARIOS:-"feed_anon feed_user favorite_list comment_list follow_list friend_list like"}
VEGETA_MODULE=github.com/tsenart/vegeta/v12@v12.13.0

# shellcheck source=bench/lib.sh
source bench/lib.sh douyin-bench
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
# a run that stops early (a failing scale) keeps what it measured
REPORTED=0
keep_results() {
  [ "$REPORTED" = 1 ] && return 0
  local keep
  keep=$(mktemp -d /tmp/douyin-bench-results.XXXXXX)
  cp -r "$RESULTS" "$WORK"/scale-* "$keep"/ 2>/dev/null || true
  echo "the run stopped early; its measurements are kept in $keep" >&2
}
trap 'keep_results; cleanup' EXIT
BPORT=$(free_port)
SPORT=$(free_port)
export DOUYIN_LOG__LEVEL=${DOUYIN_LOG__LEVEL:-warn}
export BENCH_WRK=$ROOT/bench/wrk
# at the other scales feed_user runs once more on a server with a smaller near-cache bound
# (the former default, a 1 GiB container's), which does not hold the feed's working set (about
# 490 MB by its weights at scale 10)
SMALL_NEAR=${BENCH_SMALL_NEAR_BYTES:-268435456}

# vegeta (MIT), built once into the cache from the Go module proxy
VEGETA=""
TOOLS=${XDG_CACHE_HOME:-$HOME/.cache}/douyin-lite/bin
if need vegeta; then
  VEGETA=$(command -v vegeta)
elif [ -x "$TOOLS/vegeta" ]; then
  VEGETA=$TOOLS/vegeta
elif need go; then
  echo "== building vegeta ($VEGETA_MODULE)" >&2
  mkdir -p "$TOOLS"
  GOBIN=$TOOLS go install "$VEGETA_MODULE" >&2 && VEGETA=$TOOLS/vegeta
fi

SERVER_PID=""
SCALE=""
PASS=1
ROUND=1
DIR=""
SERVE=()
start_server() {
  "${SERVE[@]}" serve >>"$DIR/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 300); do
    if curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
      # the near-cache bound in use (the memory target is stated against it); NEAR_FILE names
      # the file for a server started with another bound
      metric_sum douyin_near_cache_max_bytes >"$DIR/${NEAR_FILE:-near_max_bytes}"
      return 0
    fi
    sleep 0.1
  done
  echo "server did not become ready; log:" >&2
  tail -20 "$DIR/server.log" >&2
  exit 1
}
stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}
check() { "${SERVE[@]}" check; }
# redis_probe FILE: Redis's own speed at this moment, beside the machine probe (Redis carries
# the likes, the comment posts and the rebuild, and its phases move them together): a fixed
# script of twelve HSETs on one scratch hash (a like makes twelve calls in its script), run
# 20,000 times by one client. FILE gets the µs Redis spent a call (INFO commandstats: wall time
# in the script, preemption on the shared cores included) and the client's calls a second.
eval_stats() {
  redis-cli -p "$RPORT" info commandstats | tr -d '\r' |
    awk -F'[:,=]' '/^cmdstat_eval:/ {c = $3; u = $5} END {print c + 0, u + 0}'
}
redis_probe() {
  local key=douyin-bench:probe before after rps
  local script="local n = 0 for i = 1, 12 do n = n + redis.call('HSET', KEYS[1], 'f' .. (i % 6), i) end return n"
  before=$(eval_stats)
  rps=$(redis-benchmark -p "$RPORT" -c 1 -n 20000 -q --csv EVAL "$script" 1 "$key" |
    awk -F'","' 'NR == 2 {print $2}')
  after=$(eval_stats)
  redis-cli -p "$RPORT" del "$key" >/dev/null
  echo "$before $after ${rps:-0}" | awk '{c = $3 - $1; printf "%.2f %.0f\n", c ? ($4 - $2) / c : 0, $5}' >"$1"
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Sum of a metric family's samples (e.g. every douyin_api_errors_total series).
metric_sum() {
  curl -fs "http://127.0.0.1:$PORT/metrics" |
    awk -v m="$1" 'index($0, m) == 1 && $0 !~ /^#/ {s += $NF} END {printf "%d", s}'
}
secs_since() { python3 -c "import time; print(round(time.time() - $1, 1))"; }

# run_wrk NAME URL SCRIPT PID: one measured run, appended to the results as JSON (with the
# scale and pass); baselines (NAME baseline*) read no server metrics.
run_wrk() {
  local name=$1 url=$2 script=$3 pid=$4 base=0
  case $name in baseline*) base=1 ;; esac
  local errs_before=0 rt_before=0 errs_after=0 rt_after=0 out line
  [ $base = 1 ] || { errs_before=$(metric_sum douyin_api_errors_total); rt_before=$(metric_sum douyin_redis_round_trips_total); }
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s -s "$script" "$url" 2>&1) ||
    { echo "$out" >&2; exit 1; }
  [ $base = 1 ] || { errs_after=$(metric_sum douyin_api_errors_total); rt_after=$(metric_sum douyin_redis_round_trips_total); }
  line=$(echo "$out" | grep '^RESULT ' | sed 's/^RESULT //')
  python3 - "$name" "$line" "$((errs_after - errs_before))" "$((rt_after - rt_before))" \
    "$(rss_kb "$pid")" "$SCALE" "$PASS" "$ROUND" >>"$RESULTS" <<'EOF'
import json, sys
name, line, api_errors, round_trips, rss, scale, npass, rnd = sys.argv[1:]
r = json.loads(line)
r.update(name=name, api_errors=int(api_errors), round_trips=int(round_trips), rss_kb=int(rss),
         scale=scale, pass_no=int(npass), round=int(rnd))
print(json.dumps(r))
EOF
  echo "   [$SCALE/$PASS/$ROUND] $name: $(echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f req/s, p99 %.2f ms" % (r["rps"], r["p99_us"] / 1000))')" >&2
}

# capture NAME: the scenario's typical response for its baseline: of its first 51 captured, the
# largest no larger than the mean size of every response of the capture, padded with spaces
# (before its closing brace: still the same JSON) to that mean. A list's sizes are skewed (a
# few hot videos carry most comments), and the bytes a server sends scale with the mean, not
# the median; the sizes go to bodies/NAME.stats for the report.
capture() {
  local s=$1 dir=$DIR/capture/$1
  mkdir -p "$dir"
  BENCH_SCENARIO=$s BENCH_CAPTURE=$dir wrk -t1 -c1 -d2s -s bench/wrk/capture.lua \
    "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
  python3 - "$dir" "$DIR/bodies/$s.json" "$DIR/bodies/$s.stats" <<'EOF'
import json, os, sys
d, out, stats = sys.argv[1:]
files = sorted((os.path.getsize(os.path.join(d, f)), f) for f in os.listdir(d) if f.endswith(".json"))
if not files:
    sys.exit("no response captured in " + d)
sizes = [int(l) for l in open(os.path.join(d, "sizes.txt")) if l.strip()]
mean = round(sum(sizes) / len(sizes))
below = [f for f in files if f[0] <= mean]
body = open(os.path.join(d, (below[-1] if below else files[0])[1]), "rb").read()
median_bytes = sorted(sizes)[len(sizes) // 2]
end = body.rstrip().rfind(b"}")
if mean > len(body) and end > 0:
    body = body[:end] + b" " * (mean - len(body)) + body[end:]
open(out, "wb").write(body)
json.dump({"responses": len(sizes), "median_bytes": median_bytes, "mean_bytes": mean}, open(stats, "w"))
EOF
}

# the like scenario, with `check` before and after (every acknowledged like recorded once), on
# a server of its own: `check` needs the store to itself. Run last, so that both passes run on
# one process; the server stays stopped, and the check after it is the scale's final check.
# The restarted server gets a warm-up first, as every read does (its store's block cache and
# its allocator start cold: bench/NOTES.md), on like pairs of its own; the check counts the
# warm-up's acknowledged likes too (like_warm.json).
run_like() {
  local before after
  stop_server
  before=$(check)
  start_server
  BENCH_THREAD_BASE=$((3 * THREADS)) wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" --timeout 5s \
    -s bench/wrk/like.lua "http://127.0.0.1:$PORT" 2>&1 | sed -n 's/^RESULT //p' >"$DIR/like_warm.json" || true
  PASS=1 run_wrk like "http://127.0.0.1:$PORT" bench/wrk/like.lua "$SERVER_PID"
  stop_server
  after=$(check) || true
  python3 -c 'import json,sys; print(json.dumps({"before": json.loads(sys.argv[1]), "after": json.loads(sys.argv[2])}))' \
    "$before" "$after" >"$DIR/like_check.json"
  # the scale's final check too: nothing runs after it
  echo "$after" >"$DIR/final_check.json"
}

# start_same_size NAME: a bench-baseline on SPORT answering every path with NAME's captured body
SAME_PID=""
start_same_size() {
  "$BIN/bench-baseline" "$DIR/bodies/$1.json" "127.0.0.1:$SPORT" 2>>"$DIR/baseline.log" &
  SAME_PID=$!
  PIDS+=("$SAME_PID")
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$SPORT/" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "bench-baseline did not start on $SPORT" >&2
  exit 1
}

# warm_large NAME: at a scale other than the first, NAME's own warm-up: BENCH_WARMUP times the
# scale's size against the first scale's (BENCH_LARGE_WARMUP overrides), so that the
# measurement finds the near-cache as warm as the first scale's does
warm_large() {
  local secs
  secs=${BENCH_LARGE_WARMUP:-$(python3 -c "import sys; w, a, b = sys.argv[1:]; print(max(1, round(float(w.rstrip('s')) * float(a) / float(b))))" "$WARMUP" "$SCALE" "$FIRST_SCALE")s}
  echo "   [$SCALE] $1: warm-up $secs" >&2
  echo "$secs" >"$DIR/large_warmup"
  wrk -t"$THREADS" -c"$CONNS" -d"$secs" -s "bench/wrk/$1.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
}

# bench_scale SCALE FULL: one scale from an empty store and an empty Redis
bench_scale() {
  SCALE=$1
  local full=$2 start s
  DIR=$WORK/scale-$SCALE
  mkdir -p "$DIR/bodies"
  echo "$WARMUP" >"$DIR/warmup"
  redis-cli -p "$RPORT" flushall >/dev/null
  SERVE=("$BIN/douyin-lite" --data-dir "$DIR/data" --redis-url "$REDIS" --bind "127.0.0.1:$PORT")
  echo "== [$SCALE] seeding" >&2
  start=$(date +%s.%N)
  "${SERVE[@]}" seed --bench --scale "$SCALE" --out "$DIR/bench-data" | tee "$DIR/seed.txt" >&2
  secs_since "$start" >"$DIR/seed_secs"
  export BENCH_DATA=$DIR/bench-data
  # rebuild-cache REBUILDS times, each into an empty Redis (the seed writes none, so each does
  # the first's work); the report takes the median. One run of a minute on two shared cores
  # moves by more than the linearity target's 15%.
  echo "== [$SCALE] loading redis from the durable store (rebuild-cache, $REBUILDS runs)" >&2
  : >"$DIR/rebuild_runs"
  for _ in $(seq "$REBUILDS"); do
    redis-cli -p "$RPORT" flushall >/dev/null
    start=$(date +%s.%N)
    "${SERVE[@]}" rebuild-cache >&2
    secs_since "$start" >>"$DIR/rebuild_runs"
  done
  sort -g "$DIR/rebuild_runs" | awk '{t[NR] = $1} END {print t[int((NR + 1) / 2)]}' >"$DIR/rebuild_secs"
  redis-cli -p "$RPORT" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r' >"$DIR/redis_bytes"
  # the machine's speed as the scale starts and as it ends (bench/probe.rs): runs made at
  # different times compare only with it beside them
  "$BIN/bench-baseline" --probe >"$DIR/probe_start.json" || true
  redis_probe "$DIR/redis_probe_start" || true

  start_server
  echo "== [$SCALE] warm-up" >&2
  for s in feed_user feed_anon mixed; do
    wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "bench/wrk/$s.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
  done

  local list=$LARGE
  if [ "$full" = 1 ]; then
    list=$SCENARIOS
    # the baselines: a logged-in feed page, and a captured response of each read scenario
    local token
    token=$(awk '!/^#/ {print $2; exit}' "$BENCH_DATA/users.txt")
    curl -fs "http://127.0.0.1:$PORT/douyin/feed/?token=$token" -o "$DIR/bodies/feed_page.json"
    for s in $READS; do case " $SCENARIOS " in *" $s "*) capture "$s" ;; esac; done
    "$BIN/bench-baseline" "$DIR/bodies" "127.0.0.1:$BPORT" 2>>"$DIR/baseline.log" &
    BASE_PID=$!
    PIDS+=("$BASE_PID")
    for _ in $(seq 50); do curl -fs "http://127.0.0.1:$BPORT/" >/dev/null 2>&1 && break; sleep 0.1; done
    wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s bench/wrk/baseline.lua "http://127.0.0.1:$BPORT" >/dev/null 2>&1 || true
    run_wrk baseline "http://127.0.0.1:$BPORT/feed_page" bench/wrk/baseline.lua "$BASE_PID"
  fi

  for PASS in 1 2; do
    [ "$PASS" = 2 ] && [ "$full" != 1 ] && break
    for s in $list; do
      if [ "$s" = like ]; then
        # pass 1's figure is the checked run at the end (run_like); each run likes fresh
        # (user, video) pairs of its own
        export BENCH_THREAD_BASE=$((PASS * THREADS))
        if [ "$PASS" = 2 ]; then
          echo "== [$SCALE/$PASS] $s" >&2
          run_wrk like "http://127.0.0.1:$PORT" bench/wrk/like.lua "$SERVER_PID"
        elif [ "$full" = 1 ]; then
          echo "== [$SCALE/$PASS] $s (as in pass 2, not reported)" >&2
          wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/wrk/like.lua "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
        fi
        unset BENCH_THREAD_BASE
        continue
      fi
      echo "== [$SCALE/$PASS] $s" >&2
      if [ "$full" = 1 ] && [ "$PASS" = 1 ] && [ -f "$DIR/bodies/$s.json" ]; then
        # a read gets a warm-up of its own, then its same-size baseline and it alternate
        # ROUNDS times (the machine's load drifts within seconds); the report takes the median.
        # The baseline gets the scenario's own requests from the scenario's own script (a
        # bench-baseline of its own answers every path with the captured body), so that wrk's
        # work and the request bytes are the same on both sides and the ratio is the server's.
        wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "bench/wrk/$s.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
        start_same_size "$s"
        for ROUND in $(seq "$ROUNDS"); do
          run_wrk "baseline:$s" "http://127.0.0.1:$SPORT" "bench/wrk/$s.lua" "$SAME_PID"
          run_wrk "$s" "http://127.0.0.1:$PORT" "bench/wrk/$s.lua" "$SERVER_PID"
        done
        # once, for comparison with runs before this method: the body sent to wrk's one static
        # request (shorter than the scenario's, and no Lua on wrk's side)
        ROUND=1
        run_wrk "baseline_static:$s" "http://127.0.0.1:$BPORT/$s" bench/wrk/baseline.lua "$BASE_PID"
        kill "$SAME_PID" 2>/dev/null || true
        wait "$SAME_PID" 2>/dev/null || true
        continue
      fi
      # at the other scales a read gets a warm-up of its own too, as long as the data is
      # larger (every viewer's lists are read from Redis once: ten times as many at scale 10)
      [ "$full" = 1 ] || warm_large "$s"
      run_wrk "$s" "http://127.0.0.1:$PORT" "bench/wrk/$s.lua" "$SERVER_PID"
    done
    rss_kb "$SERVER_PID" >"$DIR/rss_pass$PASS"
    # what the RSS holds: the near-cache's weight (bounded) and jemalloc's allocated bytes
    metric_sum douyin_near_cache_bytes >"$DIR/near_bytes_pass$PASS"
    metric_sum 'douyin_allocator_bytes{kind="allocated"}' >"$DIR/allocated_pass$PASS"
    # and the durable store's share of the rest: fjall's block cache and memtables
    metric_sum douyin_store_memory_bytes >"$DIR/store_bytes_pass$PASS"
  done
  [ "$full" = 1 ] && kill "$BASE_PID" 2>/dev/null || true

  # the other scales: feed_user again, on a server with the smaller bound (whose near-cache
  # does not hold the feed's working set), after the same warm-up
  if [ "$full" != 1 ] && [ "$SMALL_NEAR" != 0 ] && [[ " $list " == *" feed_user "* ]]; then
    echo "== [$SCALE] feed_user, near-cache bound $SMALL_NEAR bytes" >&2
    stop_server
    NEAR_FILE=small_near_bytes DOUYIN_NEAR__MAX_BYTES=$SMALL_NEAR start_server
    for s in feed_user feed_anon mixed; do
      wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "bench/wrk/$s.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
    done
    warm_large feed_user
    PASS=1 run_wrk feed_user_small "http://127.0.0.1:$PORT" bench/wrk/feed_user.lua "$SERVER_PID"
  fi

  if [ "$full" = 1 ] && [ -n "$VEGETA" ]; then
    echo "== [$SCALE] vegeta: mixed" >&2
    python3 bench/vegeta/targets.py "$BENCH_DATA" "http://127.0.0.1:$PORT" 200000 >"$DIR/targets.jsonl"
    "$VEGETA" attack -format=json -targets="$DIR/targets.jsonl" -rate=0 -max-workers="$CONNS" \
      -workers="$CONNS" -duration="$DURATION" -timeout=5s -keepalive=true |
      "$VEGETA" report -type=json >"$DIR/vegeta_mixed.json"
  fi

  curl -fs "http://127.0.0.1:$PORT/metrics" |
    grep -E '^douyin_(near_cache|store_fsyncs|store_durable|cache_reloads)' >"$DIR/metrics.txt" || true
  "$BIN/bench-baseline" --probe >"$DIR/probe_end.json" || true
  redis_probe "$DIR/redis_probe_end" || true
  case " $list " in
    *" like "*) echo "== [$SCALE/1] like (checked, on a restarted server)" >&2; run_like ;;
    *) stop_server; check >"$DIR/final_check.json" || true ;;
  esac
  rm -rf "$DIR/data" "$DIR/capture"
}

# RESULTS.md is written after every scale, so a scale that fails later keeps the earlier ones
# (not `s`: bench_scale's loops use it)
first=1
done_scales=()
FIRST_SCALE=${SCALES%% *}
for scale in $SCALES; do
  bench_scale "$scale" "$first"
  first=0
  done_scales+=("$scale")
  python3 bench/report.py "$RESULTS" "$WORK" "$OUT" "$CONNS" "$THREADS" "$DURATION" \
    "${VEGETA:+${VEGETA_MODULE#*@}}" "${done_scales[@]}"
  echo "== wrote $OUT (scales: ${done_scales[*]})" >&2
done
REPORTED=1
