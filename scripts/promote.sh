#!/usr/bin/env bash
# Promote a contract-tested image to ECR and a SageMaker endpoint — for teams that want a
# script in their pipeline instead of calling the CLI. Replaces the usual deploy.sh: the same
# steps, recorded in a manifest that scripts/cleanup.sh reverses.
#
# usage: scripts/promote.sh IMAGE MODEL ENDPOINT_NAME [extra `smlocal promote` options...]
#   e.g. scripts/promote.sh acme/iris:1.4 build/model.tar.gz iris-prod --profile prod
# env:   SMLOCAL      the smlocal command (default: smlocal on PATH, else <repo>/.venv/bin/smlocal)
#        AWS_*        boto3's usual settings (credentials, AWS_REGION, AWS_ENDPOINT_URL...)
# exit:  0 promoted, 2 bad input, 3 no passing contract-test record, 1 an AWS step failed
#        (the manifest path and the cleanup command are printed).
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 IMAGE MODEL ENDPOINT_NAME [smlocal promote options...]" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
smlocal="${SMLOCAL:-$(command -v smlocal || echo "$here/.venv/bin/smlocal")}"
image="$1" model="$2" endpoint="$3"
shift 3
exec "$smlocal" promote "$image" --model "$model" --endpoint-name "$endpoint" "$@"
