#!/usr/bin/env bash
# Fuzzes every operation of the server's own OpenAPI document (/openapi.json) with schemathesis
# (from PyPI, into a cached venv): generated and mutated parameters and bodies, anonymous and
# with a valid token. Passes only with no server error, no answer outside the documented
# statuses, content types and schemas (the envelope), no request slower than 10 s (a hang),
# and the server still alive at the end.
#
#   deploy/schemathesis.sh [BINARY]     # default: the debug binary the tests built
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/debug/douyin-lite}
# shellcheck source=deploy/lib.sh
source deploy/lib.sh
VENV=$(pip_tool schemathesis 4.32.5)
[ -x "$BIN" ] || { echo "no server binary at $BIN (run the tests or cargo build first)" >&2; exit 1; }

REDIS_URL=${DOUYIN_REDIS__URL:-redis://127.0.0.1:6379}
WORK=$(mktemp -d /tmp/douyin-schemathesis.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

DOUYIN_REDIS__KEY_PREFIX="st$$:" DOUYIN_LOG__LEVEL=warn \
  DOUYIN_AUTH__ARGON2_MEMORY_KIB=1024 DOUYIN_AUTH__ARGON2_ITERATIONS=1 \
  DOUYIN_LIMITS__LOGIN_PER_IP_PER_MIN=0 DOUYIN_LIMITS__LOGIN_PER_NAME_PER_MIN=0 \
  DOUYIN_LIMITS__REGISTER_PER_IP_PER_HOUR=0 \
  "$BIN" serve --bind "127.0.0.1:$PORT" --data-dir "$WORK/data" --redis-url "$REDIS_URL" \
  >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN=$(curl -fs -X POST "$BASE/douyin/user/register/?username=fuzzer&password=fuzzer-pw" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

status=0
passed=0
failed=0
for auth in anonymous token; do
  headers=()
  # with the token, logout is left out: it would log the token out for the rest of the run
  [ "$auth" = token ] && headers=(-H "Authorization: Bearer $TOKEN" --exclude-path /douyin/user/logout/)
  echo "== schemathesis ($auth)" >&2
  (cd "$WORK" && "$VENV/bin/st" run "$BASE/openapi.json" "${headers[@]}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing --max-examples 40 --request-timeout 10 \
    --suppress-health-check all) >"$WORK/st-$auth.log" 2>&1 || status=1
  tail -25 "$WORK/st-$auth.log" >&2
  cases=$(grep -E '^ +[0-9]+ generated' "$WORK/st-$auth.log" | tail -1)
  passed=$((passed + $(echo "$cases" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)))
  failed=$((failed + $(echo "$cases" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)))
done
if ! curl -fs "$BASE/healthz" >/dev/null; then
  echo "the server died during the fuzzing; its log:" >&2
  tail -50 "$WORK/server.log" >&2
  status=1
fi
if grep -qi "panicked" "$WORK/server.log"; then
  echo "the server logged a panic:" >&2
  grep -i -A5 "panicked" "$WORK/server.log" >&2
  status=1
fi
if [ "$status" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
echo "schemathesis: $passed passed, $failed failed"
exit "$status"
