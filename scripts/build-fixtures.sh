#!/usr/bin/env bash
# Build the stdlib-only fixture images that prove the emulator's verdicts
# (tests/fixtures/images/<name>/Dockerfile, shared server in tests/fixtures/images/common/),
# tagged smlocal-fixture/<name>:latest. No wheels needed; Docker's layer cache makes a
# second run take about a second. One line per image; the build log tail on failure.
#
# usage: scripts/build-fixtures.sh [NAME...]     (default: every fixture)
# env:   SMLOCAL_BASE_IMAGE  base image (default python:3.11-slim), passed as BASE_IMAGE
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
images="$repo/tests/fixtures/images"
base="${SMLOCAL_BASE_IMAGE:-python:3.11-slim}"

all=()
for dockerfile in "$images"/*/Dockerfile; do
  all+=("$(basename "$(dirname "$dockerfile")")")
done
if [ $# -gt 0 ]; then
  names=("$@")
else
  names=("${all[@]}")
fi
for name in "${names[@]}"; do
  if [ ! -f "$images/$name/Dockerfile" ]; then
    echo "build-fixtures: unknown fixture '$name' (known: ${all[*]})" >&2
    exit 2
  fi
done

bash "$repo/scripts/ensure-base-image.sh" "$base"

log="$(mktemp "${TMPDIR:-/tmp}/smlocal-fixture-build.XXXXXX")"
trap 'rm -f "$log"' EXIT
for name in "${names[@]}"; do
  tag="smlocal-fixture/$name:latest"
  if ! docker build --build-arg "BASE_IMAGE=$base" -t "$tag" \
    -f "$images/$name/Dockerfile" "$images" >"$log" 2>&1; then
    echo "build-fixtures: building $tag failed; last lines of the build log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  echo "build-fixtures: built $tag"
done
