#!/usr/bin/env bash
# Make sure the reference images' base (default python:3.11-slim) exists in the local engine.
# 1. present locally: nothing to do;
# 2. a registry answers: pull it;
# 3. no registry (air-gapped machines, CI here): build a stand-in from Debian packages
#    (debootstrap bookworm + python3 + pip), `docker import` it under the same tag, and keep
#    it: the engine's image store is the cache, so a second run does nothing.
# Real users with a registry never reach step 3. Safe to run any number of times.
set -euo pipefail
base="${1:-${SMLOCAL_BASE_IMAGE:-python:3.11-slim}}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$base" >/dev/null 2>&1; then
  exit 0
fi
echo "smlocal: base image $base not present; trying to pull it..."
if timeout 60 docker pull -q "$base" >/dev/null 2>&1; then
  echo "smlocal: pulled $base."
  exit 0
fi
echo "smlocal: no registry answered; building a stand-in for $base from Debian packages (a few minutes, once)..."
if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  else
    echo "smlocal: cannot pull $base and debootstrap is not installed (needs root + apt-get)." >&2
    exit 1
  fi
fi
root=$(mktemp -d /tmp/smlocal-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-pip,python-is-python3 \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  echo "smlocal: debootstrap failed; last lines of $root.log:" >&2; tail -n 20 "$root.log" >&2; exit 1; }
# Slim the tree the way the official slim images are slim.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  --message "smlocal stand-in for $base (debootstrap bookworm)" \
  - "$base" >/dev/null
docker image inspect "$base" >/dev/null
echo "smlocal: built $base stand-in ($(docker image inspect -f '{{.Size}}' "$base" | awk '{printf "%.0f MB", $1/1e6}'))."
