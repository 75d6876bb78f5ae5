"""Startup checks: healthy within the window, with /opt/ml/model read-only, and isolated.

Their verdicts come from bringing the endpoint up (see :mod:`contracts.bringup`), not from a
function of a running container: the runner starts the container the strict SageMaker way and,
only when that fails with an exit, again with one condition relaxed, to name the rule broken.
"""

from __future__ import annotations

from contracts.model import CheckInfo, Severity

__all__ = ["HEALTHY", "NETWORK_ISOLATION", "READ_ONLY_MODEL", "STARTUP_CHECKS"]

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
