"""Startup checks: healthy within the window, with /opt/ml/model read-only, and isolated.

Their verdicts come from bringing the endpoint up (see :mod:`contracts.bringup`), not from a
function of a running container: the runner starts the container the strict SageMaker way and,
only when that fails with an exit, again with one condition relaxed, to name the rule broken.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace

from smlocal.contracts.model import CheckInfo, Outcome, Severity
from smlocal.contracts.wire import Address, call
from smlocal.emulator.backend import CONTAINER_PORT, ContainerBackend, ContainerRun
from smlocal.emulator.errors import BackendError

__all__ = [
    "BIND_TO_PORT",
    "BIND_TO_PORT_LABEL",
    "HEALTHY",
    "NETWORK_ISOLATION",
    "READ_ONLY_MODEL",
    "STARTUP_CHECKS",
    "check_bind_to_port",
]

HEALTHY = CheckInfo(
    "startup.healthy",
    "healthy within the startup window",
    Severity.ERROR,
    "After `docker run IMAGE serve`, GET /ping must answer 200 within 2 s before the startup "
    "health-check window closes; otherwise CreateEndpoint fails.",
    needs=("image.serve-argument",),
)
READ_ONLY_MODEL = CheckInfo(
    "startup.read-only-model",
    "works with /opt/ml/model read-only",
    Severity.ERROR,
    "SageMaker mounts the model artifacts at /opt/ml/model read-only; the container must not "
    "write there (use /tmp or another writable path).",
    needs=("image.serve-argument",),
)
NETWORK_ISOLATION = CheckInfo(
    "isolation.network",
    "serves with no network (EnableNetworkIsolation)",
    Severity.ERROR,
    "With EnableNetworkIsolation the container has no outbound network: it must start and "
    "serve without downloading anything.",
    needs=("image.serve-argument",),
)
STARTUP_CHECKS = (HEALTHY, READ_ONLY_MODEL, NETWORK_ISOLATION)

BIND_TO_PORT_LABEL = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"
BIND_PORT = 9080
SAFE_PORT_RANGE = "9080-9090"
# Once 8080 answers and the asked-for port does not, this long more settles it: a server that
# honours the variable never opens 8080 at all.
_WRONG_PORT_GRACE_S = 2.0
_POLL_S = 0.2

BIND_TO_PORT = CheckInfo(
    "startup.bind-to-port",
    "listens on SAGEMAKER_BIND_TO_PORT when labelled so",
    Severity.ERROR,
    "An image labelled com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true may be "
    "run in an inference pipeline with SAGEMAKER_BIND_TO_PORT (and SAGEMAKER_SAFE_PORT_RANGE) "
    "set; it must then listen on that port instead of 8080.",
    needs=("startup.healthy",),
)


def _answers(address: Address | None) -> int | None:
    if address is None:
        return None
    return call(address, "GET", "/ping", timeout_s=1.0).status


def check_bind_to_port(
    labels: Mapping[str, str],
    backend: ContainerBackend,
    run: ContainerRun,
    *,
    timeout_s: float,
) -> Outcome:
    """Start ``run`` again with ``SAGEMAKER_BIND_TO_PORT``; /ping must answer on that port."""
    if str(labels.get(BIND_TO_PORT_LABEL, "")).lower() != "true":
        return Outcome.not_applicable(
            f"the image has no LABEL {BIND_TO_PORT_LABEL}=true, so SageMaker always uses 8080"
        )
    env = {
        **run.env,
        "SAGEMAKER_BIND_TO_PORT": str(BIND_PORT),
        "SAGEMAKER_SAFE_PORT_RANGE": SAFE_PORT_RANGE,
    }
    run = replace(run, env=env, container_port=BIND_PORT, name=f"{run.name}-port{BIND_PORT}")
    started = time.monotonic()
    try:
        container = backend.start(run)
    except BackendError as error:
        return Outcome.failed(f"could not start it with SAGEMAKER_BIND_TO_PORT: {error}", [])
    try:
        # 8080 is probed on the bridge address (nothing publishes it): proof of the wrong port.
        default = (container.direct[0], CONTAINER_PORT) if container.direct else None
        wrong_since: float | None = None
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            status = _answers(container.published)
            took = round(time.monotonic() - started, 2)
            if status == 200:
                return Outcome.passed(
                    f"/ping answered 200 on port {BIND_PORT} (SAGEMAKER_BIND_TO_PORT) "
                    f"{took} s after start",
                    port=BIND_PORT,
                    time_to_healthy_s=took,
                )
            state = backend.state(container.id)
            if not state.running:
                logs = backend.logs(container.id, tail=5).strip().replace("\n", " | ")
                return Outcome.failed(
                    f"exited with code {state.exit_code} when started with "
                    f"SAGEMAKER_BIND_TO_PORT={BIND_PORT}",
                    [f"last log lines: {logs or '(none)'}"],
                    port=BIND_PORT,
                )
            if wrong_since is None and _answers(default) == 200:
                wrong_since = time.monotonic()
            if wrong_since is not None and time.monotonic() - wrong_since > _WRONG_PORT_GRACE_S:
                return Outcome.failed(
                    f"ignores SAGEMAKER_BIND_TO_PORT={BIND_PORT}: /ping answers on 8080, "
                    f"not on {BIND_PORT}",
                    [
                        f"port {BIND_PORT}: {status or 'no answer'}; port 8080: 200",
                        f"the image declares {BIND_TO_PORT_LABEL}=true; in an inference "
                        "pipeline SageMaker would find nothing listening. Read "
                        "SAGEMAKER_BIND_TO_PORT, or drop the label",
                    ],
                    port=BIND_PORT,
                )
            time.sleep(_POLL_S)
        return Outcome.failed(
            f"/ping did not answer 200 on port {BIND_PORT} within {timeout_s:g} s",
            [f"started with SAGEMAKER_BIND_TO_PORT={BIND_PORT}; 8080 did not answer either"],
            port=BIND_PORT,
        )
    finally:
        backend.remove(container.id)
