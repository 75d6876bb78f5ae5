#!/usr/bin/env bash
# Build a reference container image from a context directory that holds a Dockerfile and a
# requirements.txt, the way air-gapped CI builds do:
#   1. make sure the base image exists (scripts/ensure-base-image.sh);
#   2. download the wheels for CONTEXT_DIR/requirements.txt on the HOST into
#      CONTEXT_DIR/build/wheelhouse (containers cannot reach PyPI; the Dockerfile installs
#      with `pip install --no-index --find-links`). Skipped when the wheelhouse already
#      matches requirements.txt and the target platform (stamp: build/wheelhouse.stamp);
#   3. docker build -t TAG CONTEXT_DIR.
# One line per step on success; the tail of the failing step's log on failure.
# Safe to run any number of times: the second run is answered from pip's files and
# Docker's layer cache.
#
# usage: scripts/build-image.sh CONTEXT_DIR TAG
# env:   SMLOCAL_BASE_IMAGE    base image (default python:3.11-slim), passed as BASE_IMAGE
#        SMLOCAL_IMAGE_PYTHON  the image's Python version for wheel selection (default 3.11)
#        SMLOCAL_PIP           pip to download with (default: <repo>/.venv/bin/pip)
set -euo pipefail

usage() { echo "usage: $0 CONTEXT_DIR TAG" >&2; exit 2; }
[ $# -eq 2 ] || usage
context="${1%/}"
tag="$2"
[ -d "$context" ] || { echo "build-image: no such directory: $context" >&2; exit 2; }
[ -f "$context/Dockerfile" ] || { echo "build-image: $context has no Dockerfile" >&2; exit 2; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${SMLOCAL_BASE_IMAGE:-python:3.11-slim}"
py_version="${SMLOCAL_IMAGE_PYTHON:-3.11}"
build_dir="$context/build"
mkdir -p "$build_dir"

fail() { # fail STEP LOG
  echo "build-image: $1 failed; last lines of $2:" >&2
  tail -n 40 "$2" >&2
  exit 1
}

# 1. base image
bash "$repo/scripts/ensure-base-image.sh" "$base"
echo "build-image: base image $base ready"

# 2. wheelhouse
if [ -f "$context/requirements.txt" ]; then
  if [ -n "${SMLOCAL_PIP:-}" ]; then
    read -r -a pip <<<"$SMLOCAL_PIP"
  elif [ -x "$repo/.venv/bin/pip" ]; then
    pip=("$repo/.venv/bin/pip")
  else
    pip=(python3 -m pip)
  fi
  # Wheels are chosen for the image's platform, not the host's: CPython $py_version on the
  # engine's architecture, manylinux up to glibc 2.36 (Debian bookworm, the oldest base we
  # support), so a macOS or newer-glibc host still fetches wheels the image can install.
  case "$(docker version -f '{{.Server.Arch}}' 2>/dev/null || uname -m)" in
    amd64 | x86_64) arch=x86_64 ;;
    arm64 | aarch64) arch=aarch64 ;;
    *) arch="$(uname -m)" ;;
  esac
  platform_args=(--python-version "$py_version" --implementation cp
    --abi "cp${py_version/./}" --platform "manylinux2014_$arch")
  for minor in $(seq 17 36); do
    platform_args+=(--platform "manylinux_2_${minor}_$arch")
  done
  wheelhouse="$build_dir/wheelhouse"
  stamp="$build_dir/wheelhouse.stamp"
  want="$( (cat "$context/requirements.txt"; echo "${platform_args[*]}") | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$wheelhouse" ]; then
    echo "build-image: wheelhouse up to date ($(find "$wheelhouse" -name '*.whl' | wc -l) wheels)"
  else
    rm -f "$stamp"
    mkdir -p "$wheelhouse"
    log="$build_dir/pip-download.log"
    "${pip[@]}" download --disable-pip-version-check --only-binary=:all: \
      "${platform_args[@]}" -r "$context/requirements.txt" -d "$wheelhouse" >"$log" 2>&1 ||
      fail "pip download" "$log"
    echo "$want" >"$stamp"
    echo "build-image: wheelhouse ready ($(find "$wheelhouse" -name '*.whl' | wc -l) wheels," \
      "$(du -sh "$wheelhouse" | cut -f1))"
  fi
fi

# 3. image
log="$build_dir/docker-build.log"
start=$SECONDS
docker build --build-arg "BASE_IMAGE=$base" -t "$tag" "$context" >"$log" 2>&1 ||
  fail "docker build" "$log"
size="$(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
echo "build-image: built $tag ($size, $((SECONDS - start)) s)"
