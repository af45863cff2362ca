#!/usr/bin/env bash
# Static checks of the deployment files (no container engine runs on the CI machines): the
# compose file must be valid for docker-compose, and the Dockerfile must pass checkov. That the
# Grafana dashboard queries only metrics the server exports is a test of the suite
# (tests/api/deploy.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "installing docker-compose with apt-get" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
CHECKOV_VERSION=3.3.30
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/douyin-lite/checkov-$CHECKOV_VERSION
if [ ! -x "$VENV/bin/checkov" ]; then
  echo "installing checkov $CHECKOV_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "checkov==$CHECKOV_VERSION"
fi
passed=0
echo "== docker-compose config (deploy/compose.yaml)" >&2
docker-compose -f deploy/compose.yaml config -q
passed=$((passed + 1))
echo "== checkov (deploy/Dockerfile)" >&2
"$VENV/bin/checkov" -f deploy/Dockerfile --framework dockerfile --compact --quiet --skip-download >&2
passed=$((passed + 1))
echo "deploy checks: $passed passed, 0 failed"
