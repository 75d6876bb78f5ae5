#!/usr/bin/env bash
# Build the stdlib-only fixture images that prove the emulator's and contract-test's verdicts,
# as listed in tests/fixtures/images/fixtures.txt, tagged smlocal-fixture/<name>:latest:
#   mode            the shared tests/fixtures/images/Dockerfile with FIXTURE_MODE=<name>
#   dir             tests/fixtures/images/<name>/Dockerfile, on top of the echo fixture
#   relabel=OS/ARCH the echo fixture with only its platform metadata changed
# No wheels needed; Docker's layer cache makes a second run take a few seconds. One line per
# image; the build log tail on failure.
#
# usage: scripts/build-fixtures.sh [NAME...]     (default: every fixture; echo is built first
#                                                 whenever a named one builds on it)
# env:   SMLOCAL_BASE_IMAGE  base image (default python:3.11-slim), passed as BASE_IMAGE
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
images="$repo/tests/fixtures/images"
base="${SMLOCAL_BASE_IMAGE:-python:3.11-slim}"

declare -A build_of=()
order=()
while read -r name build _; do
  case "$name" in '' | '#'*) continue ;; esac
  build_of[$name]="$build"
  order+=("$name")
done <"$images/fixtures.txt"

if [ $# -gt 0 ]; then
  for name in "$@"; do
    if [ -z "${build_of[$name]:-}" ]; then
      echo "build-fixtures: unknown fixture '$name' (known: ${order[*]})" >&2
      exit 2
    fi
  done
  names=()
  # Derived fixtures need a current echo image under them.
  for name in "$@"; do
    if [ "${build_of[$name]}" != mode ] && [ "$name" != echo ]; then
      names+=(echo)
      break
    fi
  done
  names+=("$@")
else
  names=("${order[@]}")
fi

bash "$repo/scripts/ensure-base-image.sh" "$base"

log="$(mktemp "${TMPDIR:-/tmp}/smlocal-fixture-build.XXXXXX")"
trap 'rm -f "$log"' EXIT
fail() {
  echo "build-fixtures: building $1 failed; last lines of the log:" >&2
  tail -n 40 "$log" >&2
  exit 1
}
for name in "${names[@]}"; do
  tag="smlocal-fixture/$name:latest"
  build="${build_of[$name]}"
  case "$build" in
    mode)
      docker build --build-arg "BASE_IMAGE=$base" --build-arg "FIXTURE_MODE=$name" \
        -t "$tag" -f "$images/Dockerfile" "$images" >"$log" 2>&1 || fail "$tag"
      ;;
    dir)
      docker build -t "$tag" -f "$images/$name/Dockerfile" "$images" >"$log" 2>&1 || fail "$tag"
      ;;
    relabel=*)
      python3 "$repo/scripts/relabel-image-platform.py" smlocal-fixture/echo:latest "$tag" \
        "${build#relabel=}" >"$log" 2>&1 || fail "$tag"
      ;;
    *)
      echo "build-fixtures: fixtures.txt: '$name' has an unknown build '$build'" >&2
      exit 2
      ;;
  esac
  echo "build-fixtures: built $tag"
done
