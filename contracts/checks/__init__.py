"""The checks, one module per part of the contract: image, startup, ping, invocations, lifecycle.

:data:`LIVE_CHECKS` run against a healthy container in this order; image checks run first
from the image's configuration; startup outcomes come from bringing the endpoint up.
"""

from __future__ import annotations

from smlocal.contracts.checks.base import LiveCheck
from smlocal.contracts.checks.image import IMAGE_CHECKS, ImageFacts
from smlocal.contracts.checks.invocations import INVOCATION_CHECKS
from smlocal.contracts.checks.lifecycle import LIFECYCLE_CHECKS
from smlocal.contracts.checks.ping import PING_CHECKS
from smlocal.contracts.checks.startup import BIND_TO_PORT, STARTUP_CHECKS

__all__ = [
    "ALL_CHECKS",
    "IMAGE_CHECKS",
    "LIFECYCLE_CHECKS",
    "LIVE_CHECKS",
    "STARTUP_CHECKS",
    "ImageFacts",
    "LiveCheck",
]

LIVE_CHECKS: tuple[LiveCheck, ...] = (*PING_CHECKS, *INVOCATION_CHECKS)
ALL_CHECKS = (
    *(info for info, _ in IMAGE_CHECKS),
    *STARTUP_CHECKS,
    BIND_TO_PORT,
    *(check.info for check in LIVE_CHECKS),
    *(check.info for check in LIFECYCLE_CHECKS),
)
