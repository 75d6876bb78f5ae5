#!/usr/bin/env bash
# Build the stdlib-only fixture images that prove the emulator's and contract-test's verdicts,
# as listed in tests/fixtures/images/fixtures.txt, tagged smlocal-fixture/<name>:latest:
#   mode            the shared tests/fixtures/images/Dockerfile with FIXTURE_MODE=<name>
#   dir             tests/fixtures/images/<name>/Dockerfile, on top of the echo fixture
#   relabel=OS/ARCH the echo fixture with only its platform metadata changed
# No wheels needed; Docker's layer cache makes a second run take a few seconds. One line per
# image; the build log tail on failure.
#
# usage: scripts/build-fixtures.sh [NAME...]     (default: every fixture; in fixtures.txt
#                                                 order, with echo whenever one builds on it)
# env:   SMLOCAL_BASE_IMAGE  base image (default python:3.11-slim), passed as BASE_IMAGE
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
images="$repo/tests/fixtures/images"
base="${SMLOCAL_BASE_IMAGE:-python:3.11-slim}"

# Plain arrays only (bash 3.2, as on macOS): names and their builds side by side.
order=()
builds=()
while read -r name build _; do
  case "$name" in '' | '#'*) continue ;; esac
  order+=("$name")
  builds+=("$build")
done <"$images/fixtures.txt"

build_of() {
  local i
  for i in "${!order[@]}"; do
    if [ "${order[$i]}" = "$1" ]; then
      echo "${builds[$i]}"
      return 0
    fi
  done
  return 1
}

names=()
if [ $# -gt 0 ]; then
  for name in "$@"; do
    if ! build_of "$name" >/dev/null; then
      echo "build-fixtures: unknown fixture '$name' (known: ${order[*]})" >&2
      exit 2
    fi
  done
  # In fixtures.txt order, each once; echo too when a named fixture builds on it.
  for name in "${order[@]}"; do
    wanted=no
    for asked in "$@"; do
      if [ "$asked" = "$name" ]; then
        wanted=yes
      elif [ "$name" = echo ] && [ "$(build_of "$asked")" != mode ]; then
        wanted=yes
      fi
    done
    if [ "$wanted" = yes ]; then
      names+=("$name")
    fi
  done
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
  build="$(build_of "$name")"
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
