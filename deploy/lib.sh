# Shared by the deploy/ scripts (sourced from the repository root): running as root, Debian
# packages, free loopback ports, stopping a process, and PyPI tools in cached venvs.

# as_root CMD...: runs CMD as root (directly when we are root, else through sudo).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# apt_install PKG...: installs Debian packages with apt-get.
apt_install() {
  echo "installing $* with apt-get" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# service_args "$@": the arguments of a service script (`start|stop DIR`): sets CMD, and DIR
# (made, and absolute); anything else prints the usage and exits 2.
service_args() {
  if [ $# -ne 2 ] || { [ "$1" != start ] && [ "$1" != stop ]; }; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
  fi
  CMD=$1
  DIR=$(mkdir -p "$2" && cd "$2" && pwd)
}

# free_port: a TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# stop_pid PID [SECONDS]: SIGTERM, up to SECONDS (5) to exit, then SIGKILL.
stop_pid() {
  local pid=$1 tenths=$(( ${2:-5} * 10 )) waited=0
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$tenths" ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  kill -9 "$pid" 2>/dev/null || true
}

# pip_tool NAME VERSION: NAME==VERSION from PyPI in a venv of its own (once, in the cache);
# prints the venv's directory.
pip_tool() {
  local venv=${XDG_CACHE_HOME:-$HOME/.cache}/douyin-lite/$1-$2
  if [ ! -x "$venv/bin/$1" ]; then
    echo "installing $1 $2 into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "$1==$2"
  fi
  echo "$venv"
}
