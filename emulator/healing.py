"""An endpoint's instances while in service: health checks, ejection, replacement.

Every ``ping_interval_s`` each instance in the rotation gets SageMaker's health check at the
address that carries its traffic; failing ``unhealthy_after`` in a row, or exiting, replaces
it. Faster than that, an instance leaves the rotation at once when a connection to it fails
or Docker reports its container dead (its bridge address may be handed to the next container
started), and comes back only once it answers /ping there again. A mixin of
:class:`~smlocal.emulator.endpoint.Endpoint`, which owns the state it works on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp

from smlocal.emulator.backend import LABEL_ENDPOINT, LABEL_SESSION, ContainerBackend
from smlocal.emulator.errors import EndpointFailedError
from smlocal.emulator.health import exit_message, ping
from smlocal.emulator.instances import EndpointStatus, Instance, MonitorSettings
from smlocal.emulator.spec import EndpointSpec, VariantSpec

__all__ = ["Healing"]

log = logging.getLogger("smlocal.emulator.endpoint")


class Healing:
    spec: EndpointSpec
    backend: ContainerBackend
    settings: MonitorSettings
    session_id: str
    status: EndpointStatus
    instances: dict[str, list[Instance]]
    _replacing: set[asyncio.Task[None]]
    _unwatch: Callable[[], None] | None

    if TYPE_CHECKING:  # the endpoint's own, which this mixin calls

        @property
        def http(self) -> aiohttp.ClientSession: ...

        def healthy(self, variant: str) -> list[Instance]: ...

        async def _start_instance(self, variant: VariantSpec) -> Instance: ...

        async def _retire(self, instance: Instance) -> None: ...

    async def _monitor_health(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval_s)
            for group in self.instances.values():
                for instance in list(group):
                    if instance.healthy:
                        await self._check(instance)

    async def _check(self, instance: Instance) -> None:
        # The address that carries traffic is the one checked.
        result = await ping(self.http, instance.address)
        if result.ok:
            instance.failed_pings = 0
            return
        instance.failed_pings += 1
        exited = await asyncio.to_thread(exit_message, self.backend, instance.container)
        log.warning(
            "instance %s failed a health check (%d in a row): %s",
            instance.label,
            instance.failed_pings,
            exited or result.describe(),
        )
        if exited is None and instance.failed_pings < self.settings.unhealthy_after:
            return
        instance.healthy = False
        instance.leaving = True
        log.error(
            "instance %s is unhealthy (%s); replacing it, as SageMaker would",
            instance.label,
            exited or f"{instance.failed_pings} failed health checks",
        )
        task = asyncio.create_task(self._replace(instance), name=f"replace-{instance.label}")
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    def eject(self, instance: Instance, reason: str, *, unless_last: bool = False) -> None:
        """Out of the rotation at once (a connection to it failed, or its container died);
        back as soon as it answers /ping at its address, replaced if its container is gone.
        ``unless_last``: a variant's last healthy instance stays in while it is verified (a
        failed connection alone is no reason to refuse every request)."""
        if not instance.healthy or instance.leaving or self.status != EndpointStatus.IN_SERVICE:
            return
        if unless_last and self.healthy(instance.variant) == [instance]:
            if not any(t.get_name() == f"verify-{instance.label}" for t in self._replacing):
                task = asyncio.create_task(self._verify(instance), name=f"verify-{instance.label}")
                self._replacing.add(task)
                task.add_done_callback(self._replacing.discard)
            return
        instance.healthy = False
        log.warning("instance %s out of the rotation: %s", instance.label, reason)
        task = asyncio.create_task(self._verify(instance), name=f"verify-{instance.label}")
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _verify(self, instance: Instance) -> None:
        exited = await asyncio.to_thread(exit_message, self.backend, instance.container)
        if exited is None:
            result = await ping(self.http, instance.address)
            if result.ok and not instance.leaving:
                instance.healthy = True
                instance.failed_pings = 0
                log.info("instance %s answers again: back in the rotation", instance.label)
                return
        instance.leaving = True
        log.error(
            "instance %s is unhealthy (%s); replacing it, as SageMaker would",
            instance.label,
            exited or "it does not answer /ping",
        )
        await self._replace(instance)

    def _watch_exits(self) -> None:
        """Eject an instance the moment Docker reports its container dead (where the backend
        can say so): its bridge address may be handed to the next container started."""
        watch = getattr(self.backend, "watch_exits", None)
        if watch is None or self._unwatch is not None:
            return
        loop = asyncio.get_running_loop()

        def died(container_id: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to eject
                loop.call_soon_threadsafe(self._container_died, container_id)

        try:
            self._unwatch = watch(
                {LABEL_ENDPOINT: self.spec.name, LABEL_SESSION: self.session_id}, died
            )
        except Exception as error:  # health checks still catch a dead container, later
            log.warning("cannot watch container exits: %s", error)

    def _container_died(self, container_id: str) -> None:
        for group in self.instances.values():
            for instance in group:
                if instance.container.id == container_id:
                    self.eject(instance, "its container exited")

    async def _replace(self, old: Instance) -> None:
        variant = self.spec.variant(old.variant)
        assert variant is not None
        try:
            new = await self._start_instance(variant)
            log.info("instance %s replaced by %s", old.label, new.label)
        except EndpointFailedError as error:
            log.error("replacement for %s failed: %s", old.label, error)
        finally:
            group = self.instances[old.variant]
            if old in group:
                group.remove(old)
            await self._retire(old)
