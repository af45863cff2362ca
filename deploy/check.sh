#!/usr/bin/env bash
# Static checks of the deployment files (no container engine runs on the CI machines): the
# compose file must be valid for docker-compose, the Dockerfile and the Kubernetes manifests
# must pass checkov, and the manifests must match the Kubernetes API schemas
# (kubernetes-validate, offline) of the oldest and newest versions they are for. That the
# Grafana dashboard queries only metrics the server exports is a test of the suite
# (tests/api/deploy.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
VENV=$(pip_tool checkov 3.3.30)
KV=$(pip_tool kubernetes-validate 1.37.0)
passed=0
for f in compose.yaml compose.single.yaml; do
  echo "== docker-compose config (deploy/$f)" >&2
  docker-compose -f "deploy/$f" config -q
  passed=$((passed + 1))
done
echo "== docker-compose config (deploy/compose.yaml, profile scylla3)" >&2
docker-compose -f deploy/compose.yaml --profile scylla3 config -q
echo "== docker-compose config (deploy/compose.yaml, profile redis-cluster)" >&2
DOUYIN_REDIS_URL='redis-cluster://redis-c1:6379?node=redis-c2:6379&node=redis-c3:6379' \
  docker-compose -f deploy/compose.yaml --profile redis-cluster config -q
passed=$((passed + 1))
echo "== .dockerignore keeps everything the Dockerfile copies" >&2
python3 - <<'EOF'
import fnmatch, pathlib, sys
ignored = [l.strip().rstrip("/") for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
bad = []
for line in open("deploy/Dockerfile"):
    words = line.split()
    if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
        continue
    for src in words[1:-1]:
        if any(fnmatch.fnmatch(src, p) or src.startswith(p + "/") for p in ignored):
            bad.append(src)
        elif not pathlib.Path(src).exists():
            bad.append(src + " (missing)")
if bad:
    sys.exit("the Dockerfile copies what .dockerignore leaves out: " + ", ".join(bad))
EOF
passed=$((passed + 1))
echo "== checkov (deploy/Dockerfile)" >&2
"$VENV/bin/checkov" -f deploy/Dockerfile --framework dockerfile --compact --quiet --skip-download >&2
passed=$((passed + 1))
mapfile -t manifests < <(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml | sort)
for k8s in 1.30.0 1.37.0; do
  echo "== kubernetes-validate --strict, Kubernetes $k8s (${#manifests[@]} manifests)" >&2
  "$KV/bin/kubernetes-validate" -k "$k8s" --strict --quiet "${manifests[@]}"
  passed=$((passed + 1))
done
echo "== kustomizations name files that exist" >&2
"$KV/bin/python" - <<'EOF'
import pathlib, sys, yaml
bad = []
for k in pathlib.Path("deploy/k8s").rglob("kustomization.yaml"):
    doc = yaml.safe_load(k.read_text())
    for r in doc.get("resources", []):
        p = k.parent / r
        if not (p.is_file() or (p / "kustomization.yaml").is_file()):
            bad.append(f"{k}: {r}")
if bad:
    sys.exit("missing: " + ", ".join(bad))
EOF
passed=$((passed + 1))
echo "== checkov (deploy/k8s)" >&2
"$VENV/bin/checkov" -d deploy/k8s --framework kubernetes --compact --quiet --skip-download >&2
passed=$((passed + 1))
echo "deploy checks: $passed passed, 0 failed"
