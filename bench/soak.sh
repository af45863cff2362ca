#!/usr/bin/env bash
# The soak: the mixed load of bench/wrk/mixed.lua (feed reads, lists, chat polls, likes,
# comments, messages) against one server for SOAK_MINUTES, sampling every minute the server's
# RSS, its throughput and latency, and every error (wrk's socket errors, timeouts and non-2xx
# answers; the API's non-zero status codes from /metrics); then `check` over every counter.
# Writes bench/SOAK.md. Not part of CI.
#
#   bash bench/soak.sh                    # 30 minutes
#   SOAK_MINUTES=2 bash bench/soak.sh     # a quick try
#
# Settings (environment): SOAK_MINUTES (30), SOAK_CONNECTIONS (16), BENCH_SCALE (0.1),
# SOAK_OUT (bench/SOAK.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MINUTES=${SOAK_MINUTES:-30}
CONNS=${SOAK_CONNECTIONS:-16}
SCALE=${BENCH_SCALE:-0.1}
OUT=${SOAK_OUT:-bench/SOAK.md}

# shellcheck source=bench/lib.sh
source bench/lib.sh douyin-soak

export DOUYIN_LOG__LEVEL=warn
SERVE=("$BIN/douyin-lite" --data-dir "$WORK/data" --redis-url "$REDIS" --bind "127.0.0.1:$PORT")
"${SERVE[@]}" seed --bench --scale "$SCALE" --out "$WORK/bench-data" >&2
export BENCH_DATA=$WORK/bench-data
"${SERVE[@]}" serve >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$SERVER_PID/status"; }
api_errors() {
  curl -fs "http://127.0.0.1:$PORT/metrics" |
    awk 'index($0, "douyin_api_errors_total") == 1 {s += $NF} END {printf "%d", s}'
}

ROWS=$WORK/rows.jsonl
: >"$ROWS"
echo "== soak: $MINUTES minutes, $CONNS connections" >&2
for m in $(seq 1 "$MINUTES"); do
  before=$(api_errors)
  line=$(BENCH_WRK=$ROOT/bench/wrk wrk -t2 -c"$CONNS" -d60s --timeout 5s \
    -s bench/wrk/mixed.lua "http://127.0.0.1:$PORT" 2>&1 | grep '^RESULT ' | sed 's/^RESULT //')
  after=$(api_errors)
  python3 - "$m" "$line" "$((after - before))" "$(rss_mb)" >>"$ROWS" <<'EOF'
import json, sys
m, line, api_errors, rss = sys.argv[1:]
r = json.loads(line)
r.update(minute=int(m), api_errors=int(api_errors), rss_mb=int(rss))
print(json.dumps(r))
EOF
  tail -1 "$ROWS" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("   minute %d: %.0f req/s, p99 %.1f ms, RSS %d MB, errors %d" % (r["minute"], r["rps"], r["p99_us"]/1000, r["rss_mb"], r["socket_errors"]+r["http_errors"]+r["timeouts"]+r["api_errors"]))' >&2
done
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
CHECK=$("$BIN/douyin-lite" --data-dir "$WORK/data" --redis-url "$REDIS" check) || true

python3 - "$ROWS" "$OUT" "$CHECK" "$MINUTES" "$CONNS" "$SCALE" <<'EOF'
import json, sys
rows_path, out, check, minutes, conns, scale = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path)]
errs = lambda r: r["socket_errors"] + r["http_errors"] + r["timeouts"] + r["api_errors"]
first, last = rows[0], rows[-1]
settled = rows[min(2, len(rows) - 1):]
rss = [r["rss_mb"] for r in settled]
lines = [
    "# Soak",
    "",
    f"`bash bench/soak.sh`: the mixed scenario (bench/wrk/mixed.lua) for {minutes} minutes at "
    f"{conns} connections against one server on the bench data set at scale {scale}, sampled "
    "every minute; then `douyin-lite check`. One run on a shared 2-core machine.",
    "",
    "| minute | req/s | p50 ms | p99 ms | errors (socket, timeouts, non-2xx, API) | RSS MB |",
    "| --- | --- | --- | --- | --- | --- |",
]
for r in rows:
    lines.append(f"| {r['minute']} | {r['rps']:.0f} | {r['p50_us']/1000:.1f} | {r['p99_us']/1000:.1f} | {errs(r)} | {r['rss_mb']} |")
lines += [
    "",
    f"- Requests: {sum(r['requests'] for r in rows)}; errors: {sum(errs(r) for r in rows)}.",
    f"- RSS from minute {settled[0]['minute']} on: {min(rss)} to {max(rss)} MB "
    f"(first minute {first['rss_mb']} MB, last {last['rss_mb']} MB).",
    f"- Throughput: first minute {first['rps']:.0f} req/s, last {last['rps']:.0f} req/s.",
    f"- Final consistency check: `{check.strip()}`",
    "",
]
open(out, "w").write("\n".join(lines))
print(f"== wrote {out}", file=sys.stderr)
EOF
