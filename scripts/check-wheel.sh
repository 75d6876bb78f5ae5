#!/usr/bin/env bash
# Prove smlocal works as a user installs it: build the wheel from the tree, install it (and its
# runtime dependencies only, pinned by requirements.lock) into a fresh virtualenv with no
# checkout on sys.path, and run the commands and imports there. Part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/smlocal-wheel-check.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
say() { echo "check-wheel: $*"; }
die() { echo "check-wheel: FAILED: $*" >&2; exit 1; }

say "building the wheel from $repo"
"$python" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" . >"$work/build.log" 2>&1 \
  || { cat "$work/build.log" >&2; die "the wheel did not build"; }
wheel=$(ls "$work"/dist/smlocal-*.whl)
say "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
"$python" -m zipfile -l "$wheel" | awk '{print $1}' >"$work/contents.txt"
grep -qx 'smlocal/contracts/spec.schema.json' "$work/contents.txt" || die "spec.schema.json is not in the wheel"
grep -qx 'smlocal/contracts/checks/__init__.py' "$work/contents.txt" || die "contracts/checks is not in the wheel"
if grep -qE '^(emulator|contracts|loadtests|promote)/' "$work/contents.txt"; then
  die "the wheel puts a bare top-level package into site-packages"
fi

say "installing it into a fresh virtualenv (runtime dependencies pinned by requirements.lock)"
"$python" -m venv "$work/venv"
venv="$work/venv/bin"
"$venv/pip" install -q --upgrade pip >/dev/null 2>&1 || true
"$venv/pip" install -q -c requirements.lock "$wheel" >"$work/install.log" 2>&1 \
  || { tail -30 "$work/install.log" >&2; die "the wheel did not install"; }

cd "$work"  # away from the checkout: nothing of it may be importable
unset PYTHONPATH
run() { say "\$ $*"; "$@" >"$work/out.log" 2>&1 || { cat "$work/out.log" >&2; die "$* failed"; }; }
for command in "" contract-test server serve invoke ps stop logs loadtest promote cleanup; do
  # shellcheck disable=SC2086
  run "$venv/smlocal" $command --help
done
"$venv/smlocal" contract-test --list >"$work/checks.txt" || die "contract-test --list failed"
checks=$(wc -l <"$work/checks.txt")
[ "$checks" -ge 20 ] || die "contract-test --list printed $checks checks"
say "contract-test --list: $checks checks"
"$venv/python" - <<'PY' || die "a module of the distribution does not import"
import importlib, pkgutil, sys
import smlocal
assert "/site-packages/" in smlocal.__file__, smlocal.__file__
# The locustfile is Locust's entry point: importing it monkey-patches with gevent, so it is
# imported (as Locust does) in a process of its own below.
skip = {"smlocal.loadtests.locustfile"}
names = [m.name for m in pkgutil.walk_packages(smlocal.__path__, "smlocal.") if m.name not in skip]
for name in names:
    importlib.import_module(name)
for name in smlocal.__all__:
    getattr(smlocal, name)
print(f"check-wheel: imported {len(names)} modules and {len(smlocal.__all__)} public names")
PY
"$venv/python" -c "import smlocal.loadtests.locustfile" || die "the locustfile does not import"
run "$venv/python" -m smlocal --help
for bare in emulator contracts loadtests promote; do
  if "$venv/python" -c "import $bare" 2>/dev/null; then die "'import $bare' works: a bare name leaked"; fi
done
say "bare names (emulator, contracts, loadtests, promote) are not importable: ok"
say "passed"
