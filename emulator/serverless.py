"""A serverless endpoint: containers on demand, one request at a time each, scaled to zero.

How SageMaker Serverless Inference behaves (reference §B), and how this emulates it:

- No container runs until a request needs one (a *cold start*): the request waits while a
  container starts and passes /ping (3-minute limit; past it, or when the container exits,
  the request gets a ModelError saying so and the endpoint stays InService). The time from
  "no free container" to "healthy" is the ``ModelSetupTime`` metric.
- Each container serves one request at a time (AWS recommends one worker per container), so a
  request finding every warm container busy pays a cold start too, as AWS documents.
- At most MaxConcurrency requests are in flight per variant; one more gets
  ``ThrottlingException`` (HTTP 400, ``{"message": null}``: what boto3 reports as "An error
  occurred (ThrottlingException) ... (reached max retries: 4): None").
- A container idle for :func:`~smlocal.emulator.serverless_config.idle_seconds` is stopped;
  ProvisionedConcurrency containers are kept warm (started with the endpoint, topped up).
- Each container gets MemorySizeInMB as its memory limit and MemorySizeInMB / MB_PER_VCPU CPUs.
- Requests and answers are at most 4 MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smlocal.emulator.adoption import remove_containers
from smlocal.emulator.aws_errors import ACCOUNT_ID, REGION, AwsError, model_error, validation_error
from smlocal.emulator.backend import ContainerBackend, ContainerInfo, ContainerRun
from smlocal.emulator.endpoint import Endpoint, EndpointStatus, Instance, LogSink, MonitorSettings
from smlocal.emulator.errors import EndpointFailedError, SmlocalError
from smlocal.emulator.metrics import EndpointMetrics, LatencyWindow, summary_lines
from smlocal.emulator.serverless_config import (
    MAX_PAYLOAD_BYTES,
    ServerlessSpec,
    idle_seconds,
)
from smlocal.emulator.spec import EndpointSpec, VariantSpec

if TYPE_CHECKING:
    from smlocal.emulator.artifacts import StagedModel
    from smlocal.emulator.invocation import InvokeResult

__all__ = ["ServerlessEndpoint", "ServerlessMetrics", "ThrottlingError", "is_serverless"]

log = logging.getLogger(__name__)

# The container the current request was given (read by ``choose``, which invoke() calls).
_RESERVED: ContextVar[Instance | None] = ContextVar("smlocal_serverless_instance", default=None)


def is_serverless(spec: EndpointSpec) -> bool:
    return any(v.serverless is not None for v in spec.variants)


class ThrottlingError(AwsError):
    """MaxConcurrency reached: AWS answers 400 with a null message (reference §B)."""

    def __init__(self, endpoint: str, variant: str, limit: int) -> None:
        super().__init__(
            "ThrottlingException",
            f"Endpoint {endpoint} variant {variant} has {limit} request(s) in flight "
            f"(MaxConcurrency {limit}).",
        )

    def body(self) -> bytes:
        return b'{"message": null}'


@dataclass
class ServerlessMetrics(EndpointMetrics):
    """Adds ModelSetupTime (cold starts, microseconds) and the throttled requests."""

    model_setup: dict[str, LatencyWindow] = field(default_factory=dict)
    throttled: int = 0

    def setup(self, variant: str) -> LatencyWindow:
        return self.model_setup.setdefault(variant, LatencyWindow())

    def prometheus(self) -> str:
        lines = [super().prometheus().rstrip("\n")]
        lines += summary_lines(
            "smlocal_model_setup_time_microseconds",
            "ModelSetupTime (serverless cold start) in microseconds",
            self.endpoint,
            sorted(self.model_setup.items()),
        )
        metric = "smlocal_throttled_requests_total"
        lines += [
            f"# HELP {metric} requests refused with ThrottlingException (MaxConcurrency)",
            f"# TYPE {metric} counter",
            f'{metric}{{endpoint="{self.endpoint}"}} {self.throttled}',
        ]
        return "\n".join(lines) + "\n"


def _config(variant: VariantSpec) -> ServerlessSpec:
    assert variant.serverless is not None
    return variant.serverless


class ServerlessEndpoint(Endpoint):
    """An :class:`Endpoint` whose variants all carry a ServerlessConfig."""

    def __init__(
        self,
        spec: EndpointSpec,
        backend: ContainerBackend,
        models: Mapping[str, StagedModel | None],
        *,
        settings: MonitorSettings | None = None,
        log_sink: LogSink | None = None,
        session_id: str | None = None,
        idle_s: float | None = None,
    ) -> None:
        super().__init__(
            spec, backend, models, settings=settings, log_sink=log_sink, session_id=session_id
        )
        self.metrics: ServerlessMetrics = ServerlessMetrics(spec.name)
        self.idle_s = idle_seconds() if idle_s is None else idle_s
        self.free: dict[str, list[Instance]] = {v.name: [] for v in spec.variants}
        self.in_flight: dict[str, int] = {v.name: 0 for v in spec.variants}
        self._idle_since: dict[str, float] = {}
        self._warming: dict[str, int] = {v.name: 0 for v in spec.variants}
        self._scaler: asyncio.Task[None] | None = None
        self._cold: set[asyncio.Task[Instance]] = set()
        self._busy: set[str] = set()  # container ids serving a request

    # ---- lifecycle -------------------------------------------------------------------
    async def start(
        self, adopt: Sequence[ContainerInfo] = (), *, logs_since: float | None = None
    ) -> None:
        """InService at once with no container, or once the provisioned ones are healthy."""
        if adopt:  # a restarted service starts from zero (provisioned ones anew)
            await asyncio.shield(asyncio.to_thread(remove_containers, self.backend, list(adopt)))
        starts = self._top_up()
        try:
            results = await asyncio.gather(*starts, return_exceptions=True)
        except asyncio.CancelledError:
            for task in starts:
                task.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
            raise
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            self.status = EndpointStatus.FAILED
            self.failure_reason = str(failures[0])
            await self._stop_all()
            raise _as_failure(failures[0])
        self.status = EndpointStatus.IN_SERVICE
        self.in_service_at = time.time()
        self._monitor = asyncio.create_task(self._monitor_health(), name="health-monitor")
        self._scaler = asyncio.create_task(self._scale_loop(), name="serverless-scaler")

    async def stop(self) -> None:
        if self._scaler is not None:
            self._scaler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scaler
            self._scaler = None
        for task in list(self._cold):  # a cancelled start removes its container
            task.cancel()
        await asyncio.gather(*self._cold, return_exceptions=True)
        await super().stop()
        for group in self.free.values():
            group.clear()

    def _container_run(self, variant: VariantSpec, index: int) -> ContainerRun:
        run = super()._container_run(variant, index)
        config = _config(variant)
        cpus = config.vcpus
        if self.settings.host_cpus is not None:
            cpus = min(cpus, float(self.settings.host_cpus))
        return dataclasses.replace(run, cpus=cpus, memory_bytes=config.memory_mb * 1024 * 1024)

    # ---- serving ---------------------------------------------------------------------
    async def serve(
        self, call: Callable[[], Awaitable[InvokeResult]], target_variant: str | None
    ) -> InvokeResult:
        """Run ``call`` (an invoke of this endpoint) on a container of its own: a free warm
        one, else a cold-started one; ThrottlingException past MaxConcurrency."""
        async with self.reserve(target_variant):
            result = await call()
        if len(result.body) > MAX_PAYLOAD_BYTES:
            raise model_error(
                f"Received an invalid response from primary: its body is larger than the "
                f"{MAX_PAYLOAD_BYTES}-byte limit of serverless endpoints.",
                original_status=200,
                original_message=None,
                log_stream_arn=self._log_group(),
            )
        return result

    @contextlib.asynccontextmanager
    async def reserve(self, target_variant: str | None) -> AsyncIterator[Instance]:
        """A container of this request's own for the block (``choose`` returns it): a free
        warm one, else a cold-started one; ThrottlingException past MaxConcurrency. Invokes
        and response streams alike: a stream holds its container until it ends."""
        variant = self._pick(target_variant)
        config = _config(variant)
        if self.in_flight[variant.name] >= config.max_concurrency:
            self.metrics.throttled += 1
            raise ThrottlingError(self.spec.name, variant.name, config.max_concurrency)
        self.in_flight[variant.name] += 1
        try:
            instance = await self._acquire(variant)
            self._busy.add(instance.container.id)
            token = _RESERVED.set(instance)
            try:
                yield instance
            finally:
                _RESERVED.reset(token)
                self._release(instance)
        finally:
            self.in_flight[variant.name] -= 1

    def choose(self, target_variant: str | None = None) -> Instance:
        reserved = _RESERVED.get()
        if reserved is not None:
            return reserved
        return super().choose(target_variant)  # the /ping passthrough: warm ones only

    def _pick(self, target_variant: str | None) -> VariantSpec:
        if target_variant is not None:
            variant = self.spec.variant(target_variant)
            if variant is None:
                raise validation_error(
                    f"The variant {target_variant} is not present on endpoint {self.spec.name}."
                )
            return variant
        candidates = [v for v in self.spec.variants if v.weight > 0]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise AwsError(
                "ServiceUnavailable", f"Endpoint {self.spec.name} has no variant with weight."
            )
        return random.choices(candidates, [v.weight for v in candidates])[0]  # noqa: S311

    async def _acquire(self, variant: VariantSpec) -> Instance:
        free = self.free[variant.name]
        while free:
            instance = free.pop()  # the most recently used: the others may idle out
            if instance.healthy and instance in self.instances[variant.name]:
                return instance
        return await self._cold_start(variant)

    async def _cold_start(self, variant: VariantSpec) -> Instance:
        started = time.perf_counter()
        task = asyncio.create_task(self._start_instance(variant), name=f"cold-{variant.name}")
        self._cold.add(task)
        task.add_done_callback(self._cold.discard)
        try:
            instance = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current is not None and current.cancelling()):
                raise validation_error(
                    f"Endpoint {self.spec.name} of account {ACCOUNT_ID} is being deleted."
                ) from None
            raise
        except SmlocalError as error:
            raise model_error(
                f"Serverless endpoint {self.spec.name} could not start a container for this "
                f"request (cold start): {error}",
                original_status=None,
                original_message=None,
                log_stream_arn=self._log_group(),
            ) from None
        took_us = int((time.perf_counter() - started) * 1e6)
        self.metrics.setup(variant.name).add(took_us)
        return instance

    def _release(self, instance: Instance) -> None:
        self._busy.discard(instance.container.id)
        if (
            self.status in (EndpointStatus.CREATING, EndpointStatus.IN_SERVICE)
            and instance.healthy
            and instance in self.instances[instance.variant]
        ):
            self._idle_since[instance.container.id] = time.monotonic()
            self.free[instance.variant].append(instance)

    def _log_group(self) -> str:
        return (
            f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/"
            f"{self.spec.name}"
        )

    # ---- scaling ---------------------------------------------------------------------
    async def _scale_loop(self) -> None:
        tick = max(0.05, min(1.0, self.idle_s / 4))
        while True:
            await asyncio.sleep(tick)
            try:
                await self._scale_in()
                self._top_up()
            except Exception:  # keep scaling whatever one round met
                log.exception("serverless scaling of %s", self.spec.name)

    async def _scale_in(self) -> None:
        """Stop containers idle past ``idle_s``, keeping ProvisionedConcurrency of them."""
        now = time.monotonic()
        for variant in self.spec.variants:
            keep = _config(variant).warm
            total = len(self.healthy(variant.name))
            free = self.free[variant.name]
            for instance in self.healthy(variant.name):  # back in the rotation, e.g. after a
                if instance not in free and instance.container.id not in self._busy:  # check
                    free.append(instance)
                    self._idle_since.setdefault(instance.container.id, now)
            for instance in sorted(free, key=lambda i: self._idle_since.get(i.container.id, 0)):
                if total <= keep:
                    break
                if now - self._idle_since.get(instance.container.id, now) < self.idle_s:
                    continue
                free.remove(instance)
                group = self.instances[variant.name]
                if instance in group:
                    group.remove(instance)
                self._idle_since.pop(instance.container.id, None)
                total -= 1
                await self._retire(instance)

    def _top_up(self) -> list[asyncio.Task[None]]:
        """Start containers until each variant has ProvisionedConcurrency of them."""
        tasks = []
        for variant in self.spec.variants:
            have = len(self.healthy(variant.name)) + self._warming[variant.name]
            for _ in range(_config(variant).warm - have):
                task = asyncio.create_task(self._warm_one(variant), name=f"warm-{variant.name}")
                self._replacing.add(task)
                task.add_done_callback(self._replacing.discard)
                tasks.append(task)
        return tasks

    async def _warm_one(self, variant: VariantSpec) -> None:
        self._warming[variant.name] += 1
        try:
            instance = await self._start_instance(variant)
        finally:
            self._warming[variant.name] -= 1
        self._release(instance)

    async def _replace(self, old: Instance) -> None:
        """An unhealthy container leaves; a new one starts only when a request needs it (or
        to keep ProvisionedConcurrency warm)."""
        group = self.instances[old.variant]
        if old in group:
            group.remove(old)
        if old in self.free[old.variant]:
            self.free[old.variant].remove(old)
        await self._retire(old)

    # ---- live changes (UpdateEndpointWeightsAndCapacities) ----------------------------
    def apply_serverless(self, changes: Mapping[str, ServerlessSpec]) -> None:
        """New MaxConcurrency / ProvisionedConcurrency, in force for the next request."""
        variants = [
            v.model_copy(update={"serverless": changes[v.name]}) if v.name in changes else v
            for v in self.spec.variants
        ]
        self.spec = self.spec.model_copy(update={"variants": tuple(variants)})

    async def reconfigure(self, weights: Mapping[str, float], counts: Mapping[str, int]) -> None:
        variants = [
            v.model_copy(update={"weight": float(weights[v.name])}) if v.name in weights else v
            for v in self.spec.variants
        ]
        self.spec = self.spec.model_copy(update={"variants": tuple(variants)})
        await self._scale_in()
        results = await asyncio.gather(*self._top_up(), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise _as_failure(failures[0])


def _as_failure(error: BaseException) -> EndpointFailedError:
    if isinstance(error, EndpointFailedError):
        return error
    return EndpointFailedError(f"{error.__class__.__name__}: {error}")
