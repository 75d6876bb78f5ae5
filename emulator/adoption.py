"""Which containers a restarted service may take over, and removing the ones it may not.

After a SIGKILL of the service its containers keep running. On the next start, an endpoint
that comes back adopts those of its *current fleet*: the ``smlocal.fleet`` label is a short
hash of everything a container was started with (endpoint, variant, image, model digest,
environment, limits, placement), so a container of an older config, image or model never
matches. Weight and instance count are not in it: they change live without new containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import aiohttp

from smlocal.emulator.backend import (
    LABEL_ENDPOINT,
    LABEL_FLEET,
    LABEL_INSTANCE,
    LABEL_SESSION,
    LABEL_VARIANT,
    ContainerBackend,
    ContainerInfo,
    ContainerRun,
    RunningContainer,
)
from smlocal.emulator.health import PING_TIMEOUT_S, ping
from smlocal.emulator.instances import Instance
from smlocal.emulator.spec import EndpointSpec, VariantSpec

if TYPE_CHECKING:
    from smlocal.emulator.artifacts import StagedModel

__all__ = ["Adopting", "fleet_label", "instance_index", "of_fleet", "remove_containers"]

log = logging.getLogger("smlocal.emulator.endpoint")


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


class Adopting:
    """The endpoint's side of adoption: label its containers with their fleet, and take over
    the ones a previous run left (a mixin of :class:`~smlocal.emulator.endpoint.Endpoint`)."""

    spec: EndpointSpec
    backend: ContainerBackend
    session_id: str
    models: dict[str, StagedModel | None]
    instances: dict[str, list[Instance]]
    _next_index: dict[str, itertools.count[int]]

    if TYPE_CHECKING:  # the endpoint's own, which this mixin calls

        @property
        def http(self) -> aiohttp.ClientSession: ...

        def _container_run(self, variant: VariantSpec, index: int) -> ContainerRun: ...

        async def _best_address(self, container: RunningContainer) -> tuple[str, int]: ...

        def _follow_logs(
            self, container: RunningContainer, label: str, since: float | None = None
        ) -> None: ...

    def _labelled(self, variant: VariantSpec, run: ContainerRun) -> ContainerRun:
        return dataclasses.replace(run, labels={**run.labels, LABEL_FLEET: self.fleet(variant)})

    def fleet(self, variant: VariantSpec) -> str:
        """The ``smlocal.fleet`` label of ``variant``'s containers (see :func:`fleet_label`)."""
        model = self.models.get(variant.name)
        return fleet_label(
            self.spec.name,
            variant.name,
            self._container_run(variant, 0),
            model.digest if model else None,
        )

    async def _adopt(
        self, found: Sequence[ContainerInfo], logs_since: float | None
    ) -> dict[str, int]:
        """Take over the running containers of this fleet that answer /ping (2 s), up to each
        variant's count; remove the rest. Returns how many each variant adopted."""
        if not found:
            return {}
        adopted: dict[str, int] = {}
        left = list(found)
        try:
            fleets = {v.name: self.fleet(v) for v in self.spec.variants}
            candidates = of_fleet(found, self.spec.name, self.session_id, fleets)
            checks = await asyncio.gather(*(self._adoptable(info) for info in candidates))
            for info, (address, took) in sorted(
                zip(candidates, checks, strict=True), key=lambda pair: instance_index(pair[0])
            ):
                variant = self.spec.variant(info.labels[LABEL_VARIANT])
                assert variant is not None
                if address is None or adopted.get(variant.name, 0) >= variant.instance_count:
                    continue
                index = instance_index(info)
                instance = Instance(
                    variant.name, index, info.container, address, time_to_healthy_s=took
                )
                self.instances[variant.name].append(instance)
                left.remove(info)
                adopted[variant.name] = adopted.get(variant.name, 0) + 1
                self._follow_logs(info.container, instance.label, logs_since)
                log.info(
                    "instance %s adopted: container %s answers at %s:%d",
                    instance.label,
                    info.container.name,
                    *address,
                )
            for variant in self.spec.variants:
                used = [i.index for i in self.instances[variant.name]]
                self._next_index[variant.name] = itertools.count(max(used, default=-1) + 1)
        finally:
            # Unhealthy, exited, surplus or of another fleet: removed, even when cancelled.
            if left:
                for info in left:
                    log.info(
                        "container %s of the previous run is not adopted: removed",
                        info.container.name,
                    )
                await asyncio.shield(asyncio.to_thread(remove_containers, self.backend, left))
        return adopted

    async def _adoptable(self, info: ContainerInfo) -> tuple[tuple[str, int] | None, float]:
        """The address traffic will use, if the container answers /ping 200 there (and on its
        published port, which the health monitor pings) within 2 s; and how long it took."""
        started = time.monotonic()
        address = await self._best_address(info.container)
        addresses = {address, info.container.published}
        results = await asyncio.gather(
            *(ping(self.http, a, timeout_s=PING_TIMEOUT_S) for a in addresses)
        )
        if not all(r.ok for r in results):
            failed = next(r for r in results if not r.ok)
            log.info("container %s fails /ping: %s", info.container.name, failed.describe())
            return None, 0.0
        return address, time.monotonic() - started
