"""A multi-model endpoint (MME): one container serving many models, each loaded on first use.

How SageMaker does it (reference §D) and how this emulates it:

- Each container gets ``SAGEMAKER_MULTI_MODEL=true`` and a read-only ``/opt/ml/models``, a
  directory of its variant that smlocal fills (:class:`~.multi_model_cache.ModelFiles`).
- ``InvokeEndpoint`` with ``TargetModel`` (a path under the Model's prefix) goes to a container
  that has the model loaded if one has, else the next one in turn. There, on first use, the
  artifact is fetched (boto3 for ``s3://``; safe, bounded extraction), loaded with
  ``POST /models {"model_name", "url"}`` (409 counts as loaded, 507 unloads the least recently
  used models and tries again) and the request forwarded to ``POST /models/{name}/invoke`` with
  the original ``X-Amzn-SageMaker-Target-Model`` header. Concurrent first requests for a model
  share one fetch and one load.
- A request waits at most :data:`MODEL_LOAD_WAIT_S` (60 s, as on AWS) for that; past it, it
  gets ``ModelNotReadyException`` (429) and the load goes on, so a retry finds it loaded.
- ``ModelCacheSetting: Disabled`` unloads a model once no request is using it.
- Metrics (``/metrics``): ModelLoadingWaitTime, ModelDownloadingTime, ModelLoadingTime,
  ModelUnloadingTime (microseconds), ModelCacheHit (Average = the hit ratio) and
  LoadedModelCount per instance.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from smlocal.emulator.adoption import remove_containers
from smlocal.emulator.artifacts_cache import owner_tag, tag_alive
from smlocal.emulator.aws_errors import ACCOUNT_ID, REGION, AwsError, model_error, validation_error
from smlocal.emulator.backend import ContainerBackend, ContainerInfo, ContainerRun
from smlocal.emulator.endpoint import Endpoint, Instance, LogSink, MonitorSettings
from smlocal.emulator.errors import ArtifactError
from smlocal.emulator.metrics import EndpointMetrics, LatencyWindow, summary_lines
from smlocal.emulator.multi_model_cache import InstanceModels, ModelFiles, ModelLoadError
from smlocal.emulator.multi_model_config import (
    MULTI_MODEL_ENV,
    artifact_source,
    model_name_for,
    unsafe_target,
)
from smlocal.emulator.spec import EndpointSpec, VariantSpec

if TYPE_CHECKING:
    from smlocal.emulator.artifacts import StagedModel
    from smlocal.emulator.invocation import InvokeResult

__all__ = [
    "MODEL_LOAD_WAIT_S",
    "TARGET_MODEL",
    "MultiModelEndpoint",
    "MultiModelMetrics",
    "check_target_model",
    "is_multi_model",
]

log = logging.getLogger(__name__)

TARGET_MODEL = "x-amzn-sagemaker-target-model"
# How long a request waits for its model to download and load before ModelNotReadyException
# (AWS: "the 60 second timeout limit"); the load itself goes on. Read at each request, so a
# test can shorten it.
MODEL_LOAD_WAIT_S = 60.0
# How long one POST /models may take (AWS: the model "continues to download and load into the
# inference container for up to 360 seconds").
LOAD_CALL_TIMEOUT_S = 360.0
UNLOAD_CALL_TIMEOUT_S = 60.0
# A model the container forgot (404 from /models/{name}/invoke) is loaded again this often.
_RELOADS = 2

# The container the current request was routed to (read by ``choose``, which invoke() calls).
_ROUTED: contextvars.ContextVar[Instance | None] = contextvars.ContextVar(
    "smlocal_multi_model_instance", default=None
)

InvokeCall = Callable[..., Awaitable["InvokeResult"]]


def is_multi_model(spec: EndpointSpec) -> bool:
    return any(v.multi_model is not None for v in spec.variants)


def check_target_model(endpoint: Endpoint, target_model: str | None, request_id: str) -> None:
    """AWS's ValidationErrors for TargetModel on the wrong kind of endpoint (reference §D.4)."""
    multi = isinstance(endpoint, MultiModelEndpoint)
    if target_model is not None and not multi:
        raise validation_error(
            f"Endpoint {endpoint.spec.name} is not a multi-model endpoint and does not support "
            "target model header."
        )
    if multi and target_model is None:
        raise validation_error(f"Request {request_id} is missing a target model header.")
    if target_model is not None:
        why = unsafe_target(target_model)
        if why is not None:
            raise validation_error(f"TargetModel {target_model!r} is not valid: {why}.")


@dataclass
class MultiModelMetrics(EndpointMetrics):
    """Adds SageMaker's MME metrics, per variant."""

    windows: dict[tuple[str, str], LatencyWindow] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    cache_lookups: dict[str, int] = field(default_factory=dict)
    loaded_counts: Callable[[], list[tuple[str, str, int]]] = lambda: []

    def observe(self, variant: str, metric: str, microseconds: int) -> None:
        self.windows.setdefault((metric, variant), LatencyWindow()).add(microseconds)

    def lookup(self, variant: str, hit: bool) -> None:
        self.cache_lookups[variant] = self.cache_lookups.get(variant, 0) + 1
        self.cache_hits[variant] = self.cache_hits.get(variant, 0) + int(hit)

    def window(self, metric: str, variant: str) -> LatencyWindow:
        return self.windows.get((metric, variant), LatencyWindow())

    def prometheus(self) -> str:
        lines = [super().prometheus().rstrip("\n")]
        for aws_name in (
            "ModelLoadingWaitTime",
            "ModelDownloadingTime",
            "ModelLoadingTime",
            "ModelUnloadingTime",
        ):
            lines += summary_lines(
                f"smlocal_{_snake(aws_name)}_microseconds",
                f"{aws_name} in microseconds",
                self.endpoint,
                ((v, w) for (name, v), w in sorted(self.windows.items()) if name == aws_name),
            )
        metric = "smlocal_model_cache_hit"
        lines += [
            f"# HELP {metric} ModelCacheHit: requests whose model was loaded (sum) of all (count)",
            f"# TYPE {metric} summary",
        ]
        for variant, count in sorted(self.cache_lookups.items()):
            labels = f'endpoint="{self.endpoint}",variant="{variant}"'
            lines.append(f"{metric}_sum{{{labels}}} {self.cache_hits.get(variant, 0)}")
            lines.append(f"{metric}_count{{{labels}}} {count}")
        metric = "smlocal_loaded_model_count"
        lines += [
            f"# HELP {metric} LoadedModelCount: models loaded in each instance",
            f"# TYPE {metric} gauge",
        ]
        for variant, instance, loaded in self.loaded_counts():
            labels = f'endpoint="{self.endpoint}",variant="{variant}",instance="{instance}"'
            lines.append(f"{metric}{{{labels}}} {loaded}")
        return "\n".join(lines) + "\n"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


@dataclass
class _ContainerModels:
    """The MME management API of one instance's container, over the endpoint's HTTP pool."""

    endpoint: Endpoint
    instance: Instance

    async def _call(self, method: str, path: str, timeout_s: float, **kw: Any) -> tuple[int, str]:
        try:
            async with self.endpoint.http.request(
                method,
                self.instance.url(path),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                **kw,
            ) as answer:
                return answer.status, (await answer.read()).decode(errors="replace")
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as error:
            raise ModelLoadError(None, f"{error.__class__.__name__}: {error}") from None

    async def load(self, name: str, url: str) -> tuple[int, str]:
        body = {"model_name": name, "url": url}
        return await self._call("POST", "/models", LOAD_CALL_TIMEOUT_S, json=body)

    async def unload(self, name: str) -> tuple[int, str]:
        return await self._call("DELETE", f"/models/{name}", UNLOAD_CALL_TIMEOUT_S)


class MultiModelEndpoint(Endpoint):
    """An :class:`Endpoint` whose variants all serve many models (Model ``Mode: MultiModel``)."""

    def __init__(
        self,
        spec: EndpointSpec,
        backend: ContainerBackend,
        models: Mapping[str, StagedModel | None],
        *,
        cache_dir: Path,
        settings: MonitorSettings | None = None,
        log_sink: LogSink | None = None,
        session_id: str | None = None,
    ) -> None:
        super().__init__(
            spec, backend, models, settings=settings, log_sink=log_sink, session_id=session_id
        )
        self.metrics: MultiModelMetrics = MultiModelMetrics(spec.name)
        self.metrics.loaded_counts = self._loaded_counts
        # One directory per fleet: an update's new fleet fills its own while the old one serves.
        # Named by its owner too, so what a killed service left is swept (see start).
        root = cache_dir / "multi-model" / f"{spec.name}.{owner_tag()}.{uuid.uuid4().hex[:12]}"
        self.files: dict[str, ModelFiles] = {}
        for variant in spec.variants:
            prefix = variant.model or ""
            observe = _observer(self.metrics, variant.name)
            self.files[variant.name] = ModelFiles(prefix, root / variant.name, cache_dir, observe)
        self._root = root
        self._loaded_in: dict[str, InstanceModels] = {}  # by container id

    # ---- containers ----------------------------------------------------------------------
    def _container_run(self, variant: VariantSpec, index: int) -> ContainerRun:
        run = super()._container_run(variant, index)
        models_dir = self.files[variant.name].models_dir
        models_dir.mkdir(parents=True, exist_ok=True)
        return dataclasses.replace(run, env={**run.env, **MULTI_MODEL_ENV}, models_dir=models_dir)

    async def start(
        self, adopt: Sequence[ContainerInfo] = (), *, logs_since: float | None = None
    ) -> None:
        """As :meth:`Endpoint.start`, but a restarted service's containers are not adopted:
        their /opt/ml/models is the previous run's directory, so they start afresh."""
        if adopt:
            await asyncio.shield(asyncio.to_thread(remove_containers, self.backend, list(adopt)))
        await asyncio.to_thread(_sweep_gone, self._root.parent)
        await super().start((), logs_since=logs_since)

    async def stop(self) -> None:
        await super().stop()
        self._loaded_in.clear()
        await asyncio.to_thread(shutil.rmtree, self._root, True)

    def models_of(self, instance: Instance) -> InstanceModels:
        """What ``instance``'s container has loaded (forgotten once the container is gone)."""
        found = self._loaded_in.get(instance.container.id)
        if found is None:
            live = {i.container.id for group in self.instances.values() for i in group}
            for gone in set(self._loaded_in) - live:
                del self._loaded_in[gone]
            observe = _observer(self.metrics, instance.variant)
            found = InstanceModels(_ContainerModels(self, instance), observe)
            self._loaded_in[instance.container.id] = found
        return found

    def _loaded_counts(self) -> list[tuple[str, str, int]]:
        return [
            (i.variant, i.label, len(self.models_of(i).loaded))
            for group in self.instances.values()
            for i in group
            if i.healthy
        ]

    # ---- serving -------------------------------------------------------------------------
    def choose(self, target_variant: str | None = None) -> Instance:
        routed = _ROUTED.get()
        if routed is not None:
            return routed
        return super().choose(target_variant)

    def _route(self, target_variant: str | None, name: str) -> Instance:
        """The instance for a request: one with the model loaded if any, else the next."""
        first = Endpoint.choose(self, target_variant)
        if self.models_of(first).is_loaded(name):
            return first
        for other in self.healthy(first.variant):
            if self.models_of(other).is_loaded(name):
                return other
        return first

    async def serve_model(
        self, target_model: str, call: InvokeCall, target_variant: str | None
    ) -> InvokeResult:
        """Run ``call(path=...)`` (an invoke of this endpoint) against ``target_model``,
        loading it first where it is not loaded (see the module docstring)."""
        name = model_name_for(target_model)
        instance = self._route(target_variant, name)
        variant = self.spec.variant(instance.variant)
        assert variant is not None and variant.multi_model is not None
        loaded = self.models_of(instance)
        self.metrics.lookup(instance.variant, loaded.is_loaded(name))
        for attempt in range(_RELOADS + 1):
            await self._ensure_loaded(instance, loaded, target_model, name)
            token = _ROUTED.set(instance)
            try:
                with loaded.using(name):
                    return await call(path=f"/models/{name}/invoke")
            except AwsError as error:
                forgot = error.code == "ModelError" and (
                    error.members.get("OriginalStatusCode") == 404
                )
                if not forgot or attempt == _RELOADS:
                    raise
                log.info("instance %s forgot model %s; loading it again", instance.label, name)
                loaded.forget(name)
            finally:
                _ROUTED.reset(token)
                if not variant.multi_model.cache_enabled and loaded.idle(name):
                    # Disabled cache: unloaded once no request is using it, before the answer.
                    await asyncio.shield(loaded.unload(name))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ensure_loaded(
        self, instance: Instance, loaded: InstanceModels, target_model: str, name: str
    ) -> None:
        files = self.files[instance.variant]
        started = time.perf_counter()
        waited = False
        while not loaded.is_loaded(name):  # an unload (Disabled cache) may race a load
            waited = True
            future = loaded.load(name, lambda: files.fetch(target_model))
            done, _ = await asyncio.wait({future}, timeout=MODEL_LOAD_WAIT_S)
            if not done:
                raise AwsError(
                    "ModelNotReadyException",
                    f"Model {target_model} is not ready yet: it is still being downloaded or "
                    f"loaded on instance {instance.label} (after {MODEL_LOAD_WAIT_S:g} s); "
                    "it goes on loading, retry the request.",
                )
            try:
                future.result()
            except ArtifactError as error:
                raise _download_error(files.prefix, target_model, error) from None
            except ModelLoadError as error:
                raise self._load_error(instance, target_model, error) from None
        if waited:
            self.metrics.observe(
                instance.variant, "ModelLoadingWaitTime", int((time.perf_counter() - started) * 1e6)
            )

    def _load_error(self, instance: Instance, target_model: str, error: ModelLoadError) -> AwsError:
        arn = (
            f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/"
            f"{self.spec.name}:log-stream:{instance.variant}/{instance.container.name}"
        )
        where = f"See the smlocal log of endpoint {self.spec.name} for more information."
        if error.status is None:
            text = f"the container did not answer POST /models ({error.message})"
        elif error.out_of_memory:
            text = (
                f"the container answered 507 (insufficient resources) and no other model it "
                f'has loaded is idle to unload: "{error.message[:1024]}"'
            )
        else:
            text = (
                f'the container answered {error.status} to POST /models: "{error.message[:1024]}"'
            )
        return model_error(
            f"Failed to load model {target_model} on primary: {text}. {where}",
            original_status=error.status,
            original_message=error.message if error.status is not None else None,
            log_stream_arn=arn,
        )


def _sweep_gone(parent: Path) -> None:
    """Remove the models directories of services that are gone (SIGKILLed: nobody else would)."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        parts = entry.name.split(".")
        if len(parts) >= 3 and not tag_alive(parts[-2]):
            log.info("removing %s, the models directory of a service that is gone", entry)
            shutil.rmtree(entry, ignore_errors=True)


def _download_error(prefix: str, target_model: str, error: ArtifactError) -> AwsError:
    source = artifact_source(prefix, target_model)
    if source.startswith("s3://"):
        bucket, _, key = source.removeprefix("s3://").partition("/")
        where = f"(bucket: {bucket}, key: {key})"
    else:
        where = f"({source})"
    return validation_error(
        f"Failed to download model data{where} for TargetModel {target_model}. Please ensure "
        f"that there is an object located at the URL and that the role passed to CreateModel "
        f"has permissions to download the model. ({error})"
    )


def _observer(metrics: MultiModelMetrics, variant: str) -> Callable[[str, int], None]:
    def observe(metric: str, microseconds: int) -> None:
        metrics.observe(variant, metric, microseconds)

    return observe
