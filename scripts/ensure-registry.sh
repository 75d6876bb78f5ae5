#!/usr/bin/env bash
# A plain (no TLS, no auth) image registry on 127.0.0.1:PORT for promote's tests and CI.
# moto's ECR cannot take a real `docker push`, so tests send the push here (--registry-url)
# while moto answers every AWS API. Docker allows plain HTTP to 127.0.0.0/8 by default.
#
#   scripts/ensure-registry.sh [PORT]      (default: $SMLOCAL_REGISTRY_PORT or 5055)
#   scripts/ensure-registry.sh stop [PORT]
#
# Idempotent: when a registry already answers on the port it is left alone. Installs Debian's
# docker-registry when absent. Prints HOST:PORT on stdout; state lives in
# ${TMPDIR:-/tmp}/smlocal-registry-PORT (config, storage, pid, log).
set -euo pipefail

action=start
if [[ "${1:-}" == "stop" ]]; then action=stop; shift; fi
port="${1:-${SMLOCAL_REGISTRY_PORT:-5055}}"
addr="127.0.0.1:${port}"
state="${TMPDIR:-/tmp}/smlocal-registry-${port}"

answers() { curl -fsS -o /dev/null --max-time 2 "http://${addr}/v2/" 2>/dev/null; }

if [[ "$action" == stop ]]; then
  if [[ -f "$state/pid" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    kill "$(cat "$state/pid")"
    echo "stopped the registry on ${addr}" >&2
  fi
  rm -f "$state/pid"
  exit 0
fi

if answers; then echo "$addr"; exit 0; fi

if ! command -v docker-registry >/dev/null 2>&1; then
  echo "installing Debian's docker-registry ..." >&2
  sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq docker-registry >/dev/null
fi

mkdir -p "$state/storage"
# Our own config: the packaged one listens on :5000 on every interface and wants htpasswd.
cat > "$state/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${state}/storage
  delete:
    enabled: true
http:
  addr: ${addr}
YAML
nohup docker-registry serve "$state/config.yml" >"$state/log" 2>&1 &
echo $! > "$state/pid"

for _ in $(seq 1 50); do
  if answers; then echo "$addr"; exit 0; fi
  if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then break; fi
  sleep 0.2
done
echo "the registry did not start on ${addr}; its log:" >&2
tail -20 "$state/log" >&2
exit 1
