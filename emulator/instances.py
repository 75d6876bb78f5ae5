"""What an endpoint is made of: its status, its instances, and how they are watched.

Kept apart from :mod:`smlocal.emulator.endpoint` so the pieces that act on an endpoint's
instances (:mod:`~smlocal.emulator.healing`, :mod:`~smlocal.emulator.adoption`) can name
them without importing the endpoint itself.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from smlocal.emulator.backend import RunningContainer

__all__ = ["EndpointStatus", "Instance", "LogSink", "MonitorSettings"]

# (source "variant/instance", one line of container output)
LogSink = Callable[[str, str], None]


class EndpointStatus(enum.StrEnum):
    CREATING = "Creating"
    IN_SERVICE = "InService"
    FAILED = "Failed"
    DELETING = "Deleting"
    DELETED = "Deleted"


@dataclass(frozen=True)
class MonitorSettings:
    """Health checking once in service, and how the emulator places containers."""

    ping_interval_s: float = 5.0
    unhealthy_after: int = 3
    stop_grace_s: float = 30.0
    host_ip: str = "127.0.0.1"
    # Call containers on their bridge address when the host can reach it (saves Docker's
    # userland proxy hop); the published port is always the fallback.
    prefer_direct: bool = True
    host_cpus: int | None = None


@dataclass
class Instance:
    variant: str
    index: int
    container: RunningContainer
    address: tuple[str, int]
    healthy: bool = True
    # Leaving for good (scaled in, replaced, stopping): never back in the rotation.
    leaving: bool = False
    failed_pings: int = 0
    started_at: float = field(default_factory=time.time)
    time_to_healthy_s: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.variant}/{self.index}"

    def url(self, path: str) -> str:
        return f"http://{self.address[0]}:{self.address[1]}{path}"
