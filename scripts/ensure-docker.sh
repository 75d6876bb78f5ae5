#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
# - already running: do nothing;
# - dockerd installed but stopped: start it in the background (log: .smlocal/dockerd.log);
# - absent, and we are root with apt: install Debian's docker.io, then start it;
# - otherwise: say how to get Docker and fail.
# Safe to run any number of times.
set -euo pipefail
log_dir="${SMLOCAL_STATE_DIR:-$(pwd)/.smlocal}"
mkdir -p "$log_dir"
log="$log_dir/dockerd.log"

engine_up() { docker info >/dev/null 2>&1; }

if engine_up; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "smlocal: no Docker engine found; installing Debian's docker.io (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq docker.io >/dev/null
  else
    cat >&2 <<MSG
smlocal: no Docker engine is running and this script cannot install one
(it needs root and apt-get). Install Docker Engine (https://docs.docker.com/engine/install/)
or Docker Desktop, start it, and check that 'docker info' works; then run this again.
MSG
    exit 1
  fi
fi

if [ "$(id -u)" != 0 ]; then
  echo "smlocal: dockerd is installed but not running; start it (e.g. 'sudo systemctl start docker') and retry." >&2
  exit 1
fi

echo "smlocal: starting dockerd in the background (log: $log)..."
# setsid: the engine must outlive the make/CI step that started it.
setsid nohup dockerd >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 120); do
  if engine_up; then
    echo "smlocal: Docker engine is up."
    exit 0
  fi
  sleep 0.5
done
echo "smlocal: dockerd did not answer within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
