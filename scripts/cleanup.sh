#!/usr/bin/env bash
# Tear down what `smlocal promote` (or scripts/promote.sh) created, from its manifest, in
# reverse dependency order. Pre-existing resources are never touched; running it twice is safe.
#
# usage: scripts/cleanup.sh MANIFEST.json|DEPLOYMENT_ID [--yes] [--keep-artifacts] [...]
# env:   SMLOCAL  the smlocal command (default: smlocal on PATH, else <repo>/.venv/bin/smlocal)
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 MANIFEST.json|DEPLOYMENT_ID [--yes] [--keep-artifacts]" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
smlocal="${SMLOCAL:-$(command -v smlocal || echo "$here/.venv/bin/smlocal")}"
target="$1"
shift
if [[ -f "$target" ]]; then
  exec "$smlocal" cleanup --manifest "$target" "$@"
fi
exec "$smlocal" cleanup --deployment-id "$target" "$@"
