"""A running endpoint: its containers, their health, and which one serves each request.

Owns the lifecycle SageMaker gives an endpoint — Creating, then InService or Failed, then
Deleting — for every instance of every production variant: start the container, gate on
/ping, stream its logs, keep pinging while in service, replace an instance that keeps failing,
and stop everything with SIGTERM then SIGKILL after the grace period. Requests are spread by
variant weight (or pinned with TargetVariant) and round-robin over a variant's healthy
instances. Health once in service (checks, ejection, replacement) is the
:class:`~smlocal.emulator.healing.Healing` mixin's; taking over a previous run's containers
the :class:`~smlocal.emulator.adoption.Adopting` mixin's; the types they share
(:class:`Instance`, :class:`MonitorSettings`, ...) are :mod:`~smlocal.emulator.instances`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import aiohttp

from smlocal.emulator.adoption import Adopting
from smlocal.emulator.aws_errors import AwsError, validation_error
from smlocal.emulator.backend import (
    ISOLATED_NETWORK,
    LABEL_ENDPOINT,
    LABEL_INSTANCE,
    LABEL_SESSION,
    LABEL_VARIANT,
    ContainerBackend,
    ContainerInfo,
    ContainerRun,
    RunningContainer,
)
from smlocal.emulator.capture_writer import CaptureWriter
from smlocal.emulator.errors import EndpointFailedError
from smlocal.emulator.healing import Healing
from smlocal.emulator.health import (
    PingResult,
    WaitStrategy,
    ping,
    wait_until_healthy,
)
from smlocal.emulator.instances import EndpointStatus, Instance, LogSink, MonitorSettings
from smlocal.emulator.metrics import EndpointMetrics
from smlocal.emulator.placement import host_has_gpus
from smlocal.emulator.spec import EndpointSpec, VariantSpec
from smlocal.emulator.upstream import UpstreamPools

if TYPE_CHECKING:
    from smlocal.emulator.artifacts import StagedModel

__all__ = ["Endpoint", "EndpointStatus", "Instance", "LogSink", "MonitorSettings"]

log = logging.getLogger(__name__)


class Endpoint(Adopting, Healing):
    def __init__(
        self,
        spec: EndpointSpec,
        backend: ContainerBackend,
        models: Mapping[str, StagedModel | None],
        *,
        settings: MonitorSettings | None = None,
        log_sink: LogSink | None = None,
        session_id: str | None = None,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.models = dict(models)
        self.settings = settings or MonitorSettings()
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.status = EndpointStatus.CREATING
        self.failure_reason = ""
        self.metrics = EndpointMetrics(spec.name)
        self.instances: dict[str, list[Instance]] = {v.name: [] for v in spec.variants}
        self._log_sink = log_sink
        self._round_robin = {v.name: itertools.count() for v in spec.variants}
        self._next_index = {v.name: itertools.count() for v in spec.variants}
        self._monitor: asyncio.Task[None] | None = None
        self._replacing: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        # Invocations' own keep-alive connections, per container (issue 15: aiohttp's
        # client was a third of the data plane's CPU); pings and the rest use ``http``.
        self.upstream = UpstreamPools()
        self._unwatch: Callable[[], None] | None = None
        self.created_at = time.time()
        self.in_service_at: float | None = None
        # DataCaptureConfig: written off the request path, flushed when the fleet stops.
        capture = spec.capture
        self.capture = CaptureWriter(capture, spec.name) if capture and capture.enabled else None

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            # One keep-alive pool for pings and invocations; no total timeout here, each call
            # sets its own.
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
                auto_decompress=False,
            )
        return self._http

    async def start(
        self, adopt: Sequence[ContainerInfo] = (), *, logs_since: float | None = None
    ) -> None:
        """Start every instance and wait for health. Raises EndpointFailedError (status Failed).

        ``adopt``: containers a previous run of the service left running (after a SIGKILL).
        Those of this endpoint's current fleet that answer /ping become instances, up to each
        variant's count (their logs followed from ``logs_since``); every other one is removed,
        and fresh instances make up the rest.
        """
        log.info("endpoint %s: Creating (%d variant(s))", self.spec.name, len(self.spec.variants))
        adopted = await self._adopt(adopt, logs_since)
        starts = [
            asyncio.create_task(self._start_instance(variant), name=f"start-{variant.name}")
            for variant in self.spec.variants
            for _ in range(variant.instance_count - adopted.get(variant.name, 0))
        ]
        # The first failure ends the creation at once (an instance that exited must not wait
        # for its siblings' startup windows), and the rest are cancelled.
        try:
            done, pending = (
                await asyncio.wait(starts, return_when=asyncio.FIRST_EXCEPTION)
                if starts
                else (set(), set())
            )
        except asyncio.CancelledError:
            # Stopped while Creating: each start removes its own container on cancellation,
            # so wait for them all before letting the cancellation through.
            for task in starts:
                task.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
            raise
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        failures = [t.exception() for t in done if t.exception() is not None]
        if failures:
            first = failures[0]
            self.status = EndpointStatus.FAILED
            self.failure_reason = str(first)
            await self._stop_all()
            if isinstance(first, EndpointFailedError):
                raise first
            raise EndpointFailedError(f"{first.__class__.__name__}: {first}") from first
        self._watch_exits()
        self.status = EndpointStatus.IN_SERVICE
        self.in_service_at = time.time()
        log.info("endpoint %s: InService", self.spec.name)
        self._monitor = asyncio.create_task(self._monitor_health(), name="health-monitor")

    async def stop(self) -> None:
        if self.status in (EndpointStatus.DELETING, EndpointStatus.DELETED):
            return
        self.status = EndpointStatus.DELETING
        log.info("endpoint %s: Deleting", self.spec.name)
        if self._unwatch is not None:
            with contextlib.suppress(Exception):
                self._unwatch()
            self._unwatch = None
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)
        await self._stop_all()
        if self.capture is not None:  # after the last request ended: nothing captured is lost
            await asyncio.shield(asyncio.to_thread(self.capture.close))
        if self._http is not None:
            await self._http.close()
            self._http = None
        self.upstream.close()
        self.status = EndpointStatus.DELETED

    async def _stop_all(self) -> None:
        instances = [i for group in self.instances.values() for i in group]
        await asyncio.gather(*(self._retire(i) for i in instances))
        for group in self.instances.values():
            group.clear()

    async def _retire(self, instance: Instance) -> None:
        instance.healthy = False
        instance.leaving = True
        self.upstream.forget(instance.address)
        # Shielded: a cancelled caller must not leave a stopped-but-not-removed container.
        await asyncio.shield(asyncio.to_thread(self._stop_and_remove, instance.container.id))

    def _stop_and_remove(self, container_id: str) -> None:
        self.backend.stop(container_id, self.settings.stop_grace_s)
        self.backend.remove(container_id)

    def _container_run(self, variant: VariantSpec, index: int) -> ContainerRun:
        instance_type = variant.instance
        cpus = float(instance_type.vcpus)
        if self.settings.host_cpus is not None and cpus > self.settings.host_cpus:
            log.warning(
                "%s asks for %d vCPUs; this machine has %d, so the container gets %d",
                instance_type.name,
                instance_type.vcpus,
                self.settings.host_cpus,
                self.settings.host_cpus,
            )
            cpus = float(self.settings.host_cpus)
        model = self.models.get(variant.name)
        suffix = uuid.uuid4().hex[:6]
        return ContainerRun(
            image=variant.image,
            name=f"smlocal-{self.spec.name}-{variant.name}-{index}-{suffix}".lower(),
            model_dir=model.path if model else None,
            env=dict(variant.env),
            cpus=cpus,
            memory_bytes=instance_type.memory_bytes,
            labels={
                LABEL_ENDPOINT: self.spec.name,
                LABEL_SESSION: self.session_id,
                LABEL_VARIANT: variant.name,
                LABEL_INSTANCE: str(index),
            },
            host_ip=self.settings.host_ip,
            network=ISOLATED_NETWORK if variant.network_isolation else None,
            gpus=instance_type.gpus if instance_type.gpus and host_has_gpus() else 0,
        )

    async def _start_instance(self, variant: VariantSpec) -> Instance:
        index = next(self._next_index[variant.name])
        run = self._labelled(variant, self._container_run(variant, index))
        starting = asyncio.ensure_future(asyncio.to_thread(self.backend.start, run))
        try:
            container = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # `docker run` goes on in its thread; remove what it makes once it returns.
            with contextlib.suppress(Exception):
                late = await starting
                await asyncio.to_thread(self.backend.stop, late.id, 0)
                await asyncio.to_thread(self.backend.remove, late.id)
            raise
        label = f"{variant.name}/{index}"
        self._follow_logs(container, label)
        strategy = WaitStrategy(deadline_s=self.spec.startup_timeout_s)

        def stalled(last: PingResult) -> None:
            # The usual cause of an image that answers but never gets healthy: no model.
            if variant.model is None and last.status is not None:
                self._hint(
                    label,
                    f"/ping still answers {last.status} after 5 s and this variant has no "
                    "model (/opt/ml/model is empty): if the image loads one, pass --model "
                    "(ModelDataUrl)",
                )

        try:
            took = await wait_until_healthy(
                self.backend, container, strategy, self.http, on_stalled=stalled
            )
        except BaseException:
            await asyncio.to_thread(self.backend.stop, container.id, 0)
            await asyncio.to_thread(self.backend.remove, container.id)
            raise
        address = await self._best_address(container)
        instance = Instance(variant.name, index, container, address, time_to_healthy_s=took)
        self.instances[variant.name].append(instance)
        log.info("instance %s healthy after %.2f s at %s:%d", label, took, *address)
        return instance

    def _hint(self, label: str, message: str) -> None:
        """A line for the user, in the endpoint's log (where `serve` and `logs` show it)."""
        log.info("instance %s: %s", label, message)
        if self._log_sink is not None:
            self._log_sink(f"{label} smlocal", f"hint: {message}")

    async def _best_address(self, container: RunningContainer) -> tuple[str, int]:
        if self.settings.prefer_direct and container.direct is not None:
            result = await ping(self.http, container.direct, timeout_s=0.25)
            if result.ok:
                return container.direct
        return container.published

    def _follow_logs(
        self, container: RunningContainer, label: str, since: float | None = None
    ) -> None:
        sink = self._log_sink
        if sink is None:
            return

        def pump() -> None:
            pending = b""
            try:
                stream = (
                    self.backend.follow_logs(container.id, since)
                    if since is not None
                    else self.backend.follow_logs(container.id)
                )
                for chunk in stream:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        sink(label, line.decode(errors="replace").rstrip("\r"))
            except Exception as error:  # the container is gone; nothing more to read
                log.debug("log stream of %s ended: %s", label, error)
            if pending:
                sink(label, pending.decode(errors="replace"))

        threading.Thread(target=pump, name=f"logs-{label}", daemon=True).start()

    # ---- live changes (UpdateEndpointWeightsAndCapacities) --------------------------------
    async def reconfigure(self, weights: Mapping[str, float], counts: Mapping[str, int]) -> None:
        """Change variants' weights and instance counts while serving.

        New instances start and pass health checks before they take traffic; surplus ones
        leave the rotation first, then stop gracefully (SIGTERM, SIGKILL after the grace
        period), so no request is lost either way. Raises EndpointFailedError when a new
        instance fails; the instances that did start keep serving.
        """
        variants = []
        for variant in self.spec.variants:
            changes: dict[str, object] = {}
            if variant.name in weights:
                changes["weight"] = float(weights[variant.name])
            if variant.name in counts:
                changes["instance_count"] = int(counts[variant.name])
            variants.append(variant.model_copy(update=changes))
        self.spec = self.spec.model_copy(update={"variants": tuple(variants)})
        starts = []
        for variant in self.spec.variants:
            group = self.instances[variant.name]
            surplus = group[variant.instance_count :]
            for instance in surplus:
                instance.healthy = False  # out of the rotation before it stops
                instance.leaving = True
            for instance in surplus:
                group.remove(instance)
                await self._retire(instance)
            missing = variant.instance_count - len(group)
            starts += [self._start_instance(variant) for _ in range(missing)]
        results = await asyncio.gather(*starts, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            if isinstance(first, EndpointFailedError):
                raise first
            raise EndpointFailedError(f"{first.__class__.__name__}: {first}") from first

    # ---- routing -----------------------------------------------------------------------
    def choose(self, target_variant: str | None = None) -> Instance:
        """The instance that serves the next request. Raises AwsError when none can."""
        if target_variant is not None:
            if self.spec.variant(target_variant) is None:
                raise validation_error(
                    f"The variant {target_variant} is not present on endpoint {self.spec.name}."
                )
            variant_name = target_variant
        else:
            candidates = [v for v in self.spec.variants if v.weight > 0 and self.healthy(v.name)]
            if not candidates:
                raise _no_capacity(self.spec.name)
            if len(candidates) == 1:
                variant_name = candidates[0].name
            else:
                weights = [v.weight for v in candidates]
                variant_name = random.choices(candidates, weights)[0].name  # noqa: S311
        healthy = self.healthy(variant_name)
        if not healthy:
            raise _no_capacity(self.spec.name)
        return healthy[next(self._round_robin[variant_name]) % len(healthy)]

    def healthy(self, variant: str) -> list[Instance]:
        """The variant's instances in the rotation."""
        return [i for i in self.instances[variant] if i.healthy]

    def describe(self) -> dict[str, object]:
        """The status route's view (``GET /smlocal/endpoints``). Beyond DescribeEndpoint's
        fields it names each instance's container and the address the runtime API calls it
        on, and the hosting modes, so ``smlocal loadtest --direct`` can aim at the containers
        and measure their CPU."""
        return {
            "EndpointName": self.spec.name,
            "EndpointStatus": str(self.status),
            "FailureReason": self.failure_reason or None,
            "AsyncInference": self.spec.asynchronous,
            "ProductionVariants": [
                {
                    "VariantName": v.name,
                    "CurrentWeight": v.weight,
                    "InstanceType": v.instance_type,
                    "DesiredInstanceCount": v.instance_count,
                    "CurrentInstanceCount": len(self.healthy(v.name)),
                    "Image": v.image,
                    "Serverless": v.serverless is not None,
                    "MultiModel": v.multi_model is not None,
                    "Instances": [
                        {
                            "Instance": i.label,
                            "ContainerId": i.container.id,
                            "Url": i.url(""),
                            "Healthy": i.healthy,
                        }
                        for i in self.instances.get(v.name, [])
                    ],
                }
                for v in self.spec.variants
            ],
        }


def _no_capacity(endpoint: str) -> AwsError:
    return AwsError(
        "ServiceUnavailable",
        f"Endpoint {endpoint} has no healthy instance to serve the request; see its log.",
    )
