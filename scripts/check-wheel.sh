#!/usr/bin/env bash
# Prove smlocal works as a user installs it: build the wheel from a clean copy of the tree,
# install it with its runtime dependencies only (exactly the versions requirements.lock pins)
# into a fresh virtualenv with no checkout on sys.path, and run the commands and imports there.
# Part of `make test` (`make wheel-check` alone).
#
# The runtime dependencies come from a wheelhouse under .cache/wheel-check/<key>/, built once
# from requirements.lock and kept while the lock, the wheel's Requires-Dist and the Python
# version stay the same; after that the install runs with --no-index. KEEP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
python=${PYTHON:-$repo/.venv/bin/python}
lock=$repo/requirements.lock
cache=$repo/.cache/wheel-check
work=$(mktemp -d "${TMPDIR:-/tmp}/smlocal-wheel-check.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
say() { echo "check-wheel: $*"; }
die() {
  echo "check-wheel: FAILED: $*" >&2
  exit 1
}
step_start=$SECONDS
# lap: the time since the previous lap, in $lap_s.
lap() {
  lap_s="$((SECONDS - step_start)) s"
  step_start=$SECONDS
}

# 1. The wheel, from the files a commit would hold (tracked plus untracked-not-ignored), so a
#    stale build/ or egg-info in the checkout cannot leak into it.
say "copying the tree (git ls-files, no ignored files) to build from"
mkdir "$work/src"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$repo" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done |
    tar --null -T - -cf - | tar -C "$work/src" -xf -
else
  tar --exclude=./.git --exclude='./.venv*' --exclude=./build --exclude='./*.egg-info' \
    --exclude=./.cache --exclude='./containers/*/build' -cf - . | tar -C "$work/src" -xf -
fi
say "building the wheel"
(cd "$work/src" && "$python" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" .) \
  >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  die "the wheel did not build"
}
wheel=$(ls "$work"/dist/smlocal-*.whl)
lap
say "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB) in $lap_s"
"$python" -m zipfile -l "$wheel" | awk 'NR > 1 {print $1}' >"$work/contents.txt"
for f in smlocal/__init__.py smlocal/cli/__init__.py smlocal/contracts/spec.schema.json \
  smlocal/contracts/checks/__init__.py smlocal/emulator/service/__init__.py; do
  grep -qx "$f" "$work/contents.txt" || die "$f is not in the wheel"
done
grep -qE '^smlocal/contracts/specs/[^/]+\.yaml$' "$work/contents.txt" ||
  die "no contract spec (smlocal/contracts/specs/*.yaml) in the wheel"
if grep -vE '^(smlocal/|smlocal-[^/]+\.dist-info/)' "$work/contents.txt" >"$work/stray.txt"; then
  die "the wheel holds files outside smlocal/: $(head -5 "$work/stray.txt" | tr '\n' ' ')"
fi

# 2. A fresh virtualenv (no system site-packages, no pip of its own: the project's pip installs
#    into it with --python), the runtime dependencies from the wheelhouse.
requires=$("$python" - "$wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    lines = z.read(meta).decode().splitlines()
print("\n".join(sorted(l for l in lines if l.startswith("Requires-Dist:") and "extra ==" not in l)))
PY
)
key=$( {
  cat "$lock"
  echo "$requires"
  "$python" -c 'import sys, sysconfig; print(sys.version_info[:2], sysconfig.get_platform())'
} | sha256sum | cut -c1-16)
wheelhouse=$cache/$key
if [ ! -d "$wheelhouse" ]; then
  say "no wheelhouse for this lock yet: building $wheelhouse (runtime dependencies only)"
  mkdir -p "$cache"
  tmp_house=$(mktemp -d "$cache/.building.XXXXXX")
  "$python" -m pip wheel -q -c "$lock" -w "$tmp_house" "$wheel" >"$work/wheelhouse.log" 2>&1 || {
    rm -rf "$tmp_house"
    tail -30 "$work/wheelhouse.log" >&2
    die "could not build the runtime dependencies' wheels"
  }
  rm -f "$tmp_house"/smlocal-*.whl
  # Only the current key is kept: an old lock's wheels are of no further use.
  find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name '.building.*' ! -name "$key" \
    -exec rm -rf {} +
  mv -T "$tmp_house" "$wheelhouse" 2>/dev/null || rm -rf "$tmp_house" # a parallel run won
  lap
  say "wheelhouse: $(ls "$wheelhouse" | wc -l) wheels, $(du -sh "$wheelhouse" | cut -f1), in $lap_s"
fi
say "installing the wheel into a fresh virtualenv (--no-index, wheelhouse $key)"
"$python" -m venv --without-pip "$work/venv"
venv=$work/venv/bin
"$python" -m pip --python "$venv/python" install -q --no-compile --no-index --find-links "$wheelhouse" \
  -c "$lock" "$wheel" >"$work/install.log" 2>&1 || {
  tail -30 "$work/install.log" >&2
  die "the wheel did not install from the wheelhouse (delete $cache to rebuild it)"
}
lap
say "installed in $lap_s"
# Every distribution in the venv is exactly what the lock pins (nothing unpinned slipped in).
"$venv/python" - "$lock" <<'PY' || die "the installed runtime dependencies differ from requirements.lock"
import importlib.metadata as md, re, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
pins = {}
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, version = line.split("==", 1)
        pins[norm(name.split("[")[0])] = version.split(";")[0].strip()
bad = []
for dist in md.distributions():
    name = norm(dist.metadata["Name"])
    if name != "smlocal" and pins.get(name) != dist.version:
        bad.append(f"{dist.metadata['Name']}=={dist.version} (lock: {pins.get(name, 'not pinned')})")
if bad:
    print("check-wheel: not as pinned: " + ", ".join(sorted(bad)), file=sys.stderr)
    sys.exit(1)
PY

# 3. Outside the checkout, nothing of it on sys.path.
cd "$work"
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP
run() {
  say "\$ ${*#"$venv/"}"
  "$@" >"$work/out.log" 2>&1 || {
    cat "$work/out.log" >&2
    die "$* failed"
  }
}
# Every command and subcommand, read from the typer app itself so a new one is covered.
"$venv/python" - >"$work/commands.txt" <<'PY' || die "could not list the CLI's commands"
import typer.main
from smlocal.cli import app
def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            yield from walk(sub, [*path, name])
for path in walk(typer.main.get_command(app), []):
    print(" ".join(path))
PY
grep -qx 'contract-test' "$work/commands.txt" || die "smlocal has no contract-test command"
while IFS= read -r command; do
  # shellcheck disable=SC2086  # a subcommand path is several words
  run "$venv/smlocal" $command --help
done <"$work/commands.txt"
"$venv/smlocal" contract-test --list >"$work/checks.txt" 2>&1 || {
  cat "$work/checks.txt" >&2
  die "smlocal contract-test --list failed"
}
"$venv/python" - "$work/checks.txt" <<'PY' || die "contract-test --list does not list every check"
import sys
from smlocal.contracts.runner import CHECK_IDS
listed = {line.split()[0] for line in open(sys.argv[1]) if line.strip()}
missing = [c for c in CHECK_IDS if c not in listed]
if missing or not CHECK_IDS:
    sys.exit(f"check-wheel: missing from --list: {missing or 'every check (CHECK_IDS is empty)'}")
print(f"check-wheel: contract-test --list: all {len(CHECK_IDS)} checks")
PY
run "$venv/python" -m smlocal --help
"$venv/python" - "$repo" <<'PY' || die "a module of the distribution does not import (see above)"
import importlib, importlib.resources, json, pkgutil, sys
repo = sys.argv[1]
import smlocal
site = next(p for p in sys.path if p.endswith("site-packages"))
assert smlocal.__file__.startswith(site + "/"), f"smlocal comes from {smlocal.__file__}"
# smlocal.loadtests.locustfile is Locust's entry point: importing it loads gevent, which
# monkey-patches the process, so it is imported (as Locust does) in a process of its own.
skip = {"smlocal.loadtests.locustfile"}
def onerror(name):
    raise SystemExit(f"check-wheel: walking {name} failed: {sys.exc_info()[1]!r}")
names = [m.name for m in pkgutil.walk_packages(smlocal.__path__, "smlocal.", onerror=onerror)]
for name in names:
    if name not in skip:
        importlib.import_module(name)
for name in getattr(smlocal, "__all__", ()):
    getattr(smlocal, name)
leaked = sorted(
    f"{name}: {mod.__file__}" for name, mod in sys.modules.items()
    if getattr(mod, "__file__", None) and mod.__file__.startswith(repo + "/")
)
assert not leaked, f"modules loaded from the checkout: {leaked}"
data = importlib.resources.files("smlocal.contracts")
json.loads((data / "spec.schema.json").read_text())
specs = [p.name for p in (data / "specs").iterdir() if p.name.endswith(".yaml")]
assert specs, "no contract spec (specs/*.yaml) installed"
print(f"check-wheel: imported {len(names) - len(skip)} modules (+ {len(skip)} on its own) and"
      f" {len(getattr(smlocal, '__all__', ()))} public names; package data: spec.schema.json,"
      f" {len(specs)} specs")
PY
run "$venv/python" -c "import smlocal.loadtests.locustfile"
for bare in emulator contracts loadtests promote monitor; do
  "$venv/python" -c "
import sys
try:
    import $bare
except ModuleNotFoundError:
    sys.exit(0)
except ImportError as e:
    sys.exit(f'check-wheel: import $bare found something (ImportError, not ModuleNotFoundError): {e}')
sys.exit(f'check-wheel: import $bare works: {$bare.__file__}')
" || die "the bare name '$bare' is importable from the installed wheel"
done
say "import emulator / contracts / loadtests / promote / monitor: ModuleNotFoundError, as they should"
lap
say "passed (the checks in the venv: $lap_s)"
