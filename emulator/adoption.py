"""Which containers a restarted service may take over, and removing the ones it may not.

After a SIGKILL of the service its containers keep running. On the next start, an endpoint
that comes back adopts those of its *current fleet*: the ``smlocal.fleet`` label is a short
hash of everything a container was started with (endpoint, variant, image, model digest,
environment, limits, placement), so a container of an older config, image or model never
matches. Weight and instance count are not in it: they change live without new containers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence

from smlocal.emulator.backend import (
    LABEL_ENDPOINT,
    LABEL_FLEET,
    LABEL_INSTANCE,
    LABEL_SESSION,
    LABEL_VARIANT,
    ContainerBackend,
    ContainerInfo,
    ContainerRun,
)

__all__ = ["fleet_label", "instance_index", "of_fleet", "remove_containers"]


def fleet_label(endpoint: str, variant: str, run: ContainerRun, model_digest: str | None) -> str:
    facts = {
        "endpoint": endpoint,
        "variant": variant,
        "image": run.image,
        "model": model_digest,
        "env": dict(run.env),
        "cpus": run.cpus,
        "memory": run.memory_bytes,
        "command": list(run.command),
        "host_ip": run.host_ip,
        "network": run.network,
        "port": run.container_port,
        "model_read_only": run.model_read_only,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def of_fleet(
    found: Sequence[ContainerInfo], endpoint: str, session: str, fleets: Mapping[str, str]
) -> list[ContainerInfo]:
    """The running containers of ``endpoint`` in ``session`` whose fleet label is their
    variant's current one (``fleets``: variant name → label)."""
    return [
        info
        for info in found
        if info.running
        and info.labels.get(LABEL_ENDPOINT) == endpoint
        and info.labels.get(LABEL_SESSION) == session
        and fleets.get(info.labels.get(LABEL_VARIANT, "")) == info.labels.get(LABEL_FLEET)
    ]


def instance_index(info: ContainerInfo) -> int:
    """The instance number a container was started as (unlabelled ones sort last)."""
    text = info.labels.get(LABEL_INSTANCE, "")
    return int(text) if text.isdigit() else 1_000_000


def remove_containers(backend: ContainerBackend, found: Sequence[ContainerInfo]) -> None:
    """Stop (at once) and remove each container; one that is already gone is no error."""
    for info in found:
        with contextlib.suppress(Exception):
            backend.stop(info.container.id, 0)
        with contextlib.suppress(Exception):
            backend.remove(info.container.id)
