"""The hosting backend of the local service: SageMaker's hosting operations on real containers.

One method per control-plane operation (``CreateModel`` → :meth:`HostingService.create_model`
...), each taking the validated input members and returning the output members, as moto's
backends do; the operations on records alone (models, configs, tags, lists) are the
:class:`~smlocal.emulator.service.catalog.Catalog`'s. Records (the Describe* outputs) live in
the :class:`Store`; live endpoints (the core's :class:`Endpoint`, which the runtime API routes
to) live in :attr:`endpoints`.

Lifecycle, as SageMaker does it (reference §A.5): CreateEndpoint answers at once with the
endpoint ``Creating`` and brings it up in the background (InService, or Failed with a
FailureReason that carries the container's exit code and last log lines). UpdateEndpoint is
blue/green: the new fleet starts and passes health checks while the old one serves; then
traffic moves at once and the old fleet stops; if the new fleet fails, the old one keeps
serving and the endpoint returns to InService with a FailureReason and the old config name.
UpdateEndpointWeightsAndCapacities changes weights and counts live. DeleteEndpoint is refused
while Creating or Updating, in AWS's words.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from smlocal.emulator.adoption import remove_containers
from smlocal.emulator.artifacts import stage_models
from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.backend import LABEL_ENDPOINT, ContainerBackend, ContainerInfo
from smlocal.emulator.endpoint import Endpoint, LogSink, MonitorSettings
from smlocal.emulator.errors import SmlocalError
from smlocal.emulator.multi_model import MultiModelEndpoint, is_multi_model
from smlocal.emulator.placement import placement_warnings
from smlocal.emulator.serverless import ServerlessEndpoint, is_serverless
from smlocal.emulator.service.capture_rules import capture_summary
from smlocal.emulator.service.catalog import Catalog, Params, public
from smlocal.emulator.service.inference_types import check_type_change
from smlocal.emulator.service.multi_model_rules import (
    check_model_images,
    check_multi_model_image,
)
from smlocal.emulator.service.resources import (
    ATTACHED_TAG,
    SERVE_TAG,
    already_exists,
    arn,
    in_progress,
)
from smlocal.emulator.service.serverless_rules import serverless_summaries, stage_serverless_update
from smlocal.emulator.service.specs import container_of, endpoint_spec, local_image
from smlocal.emulator.service.store import Kind, Store
from smlocal.emulator.spec import EndpointSpec
from smlocal.emulator.state import identity_alive

__all__ = ["HostingService"]

log = logging.getLogger(__name__)

_BUSY = ("Creating", "Updating", "Deleting", "SystemUpdating", "RollingBack")
_TAIL_LINES = 20
_DEPLOYED = "_smlocal_deployed"
_MAX_REASON = 1024
# Seconds the old fleet keeps its containers after traffic moved (AWS's
# TerminationWaitInSeconds defaults to 0; a moment lets requests in flight finish).
BLUE_DRAIN_S = 1.0


class HostingService(Catalog):
    def __init__(
        self,
        store: Store,
        backend: ContainerBackend,
        *,
        cache_dir: Path,
        settings: MonitorSettings,
        session_id: str,
        log_sink: Callable[[str], LogSink],
        resolve_image: Callable[[str], str | None],
        invocation_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(store)
        self.invocation_timeout_s = invocation_timeout_s
        self.backend = backend
        self.cache_dir = cache_dir
        self.settings = settings
        self.session_id = session_id
        self.endpoints: dict[str, Endpoint] = {}
        self._log_sink = log_sink
        self._resolve_image = resolve_image
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        # (event "created" | "updated" | "deleted", endpoint, config name): async inference.
        self.observers: list[Callable[[str, str, str], None]] = []

    # ---- models --------------------------------------------------------------------------
    async def create_model(self, p: Params) -> Params:
        # AWS refuses a multi-model image without its capability label here (when local).
        resolve = functools.partial(local_image, resolve=self._resolve_image)
        image_info = getattr(self.backend, "image_info", None)
        await asyncio.to_thread(check_model_images, p, resolve, image_info)
        return await super().create_model(p)

    # ---- endpoints -----------------------------------------------------------------------
    async def create_endpoint(self, p: Params) -> Params:
        self._refuse_if_closing()
        name = p["EndpointName"]
        if self.store.get(Kind.ENDPOINT, name) is not None:
            raise already_exists("endpoint", name)
        # Resolving images may pull from a registry mirror: off the event loop.
        spec, specified = await asyncio.to_thread(self._spec, name, p["EndpointConfigName"])
        now = time.time()
        endpoint_arn = arn("endpoint", name)
        record = {
            "EndpointName": name,
            "EndpointArn": endpoint_arn,
            "EndpointConfigName": p["EndpointConfigName"],
            "EndpointStatus": "Creating",
            "CreationTime": now,
            "LastModifiedTime": now,
            _DEPLOYED: _deployed(spec, specified),
        }
        self.store.insert(Kind.ENDPOINT, name, record, status="Creating")
        self._tag(endpoint_arn, p)
        for observe in self.observers:
            observe("created", name, p["EndpointConfigName"])
        self._background(self._bring_up(name, spec), f"create-{name}")
        return {"EndpointArn": endpoint_arn}

    async def describe_endpoint(self, p: Params) -> Params:
        record = self._require(Kind.ENDPOINT, "endpoint", p["EndpointName"])
        live = self.endpoints.get(record["EndpointName"])
        specified = (record.get(_DEPLOYED) or {}).get("specified", {})
        answer = public(record)
        if live is not None:
            answer["ProductionVariants"] = self._variants(live, specified)
        capture = capture_summary((record.get(_DEPLOYED) or {}).get("spec"))
        if capture is not None:
            answer["DataCaptureConfig"] = capture
        return answer

    async def update_endpoint(self, p: Params) -> Params:
        self._refuse_if_closing()
        record = self._ready_for_change(p["EndpointName"])
        name = record["EndpointName"]  # as created: the request may spell it in another case
        spec, specified = await asyncio.to_thread(self._spec, name, p["EndpointConfigName"])
        check_type_change(name, self.endpoints[name].spec, spec)
        self._set_status(record, "Updating", FailureReason=None)
        for observe in self.observers:
            observe("updated", name, p["EndpointConfigName"])
        self._background(
            self._blue_green(name, spec, specified, p["EndpointConfigName"]), f"update-{name}"
        )
        return {"EndpointArn": record["EndpointArn"]}

    async def update_endpoint_weights_and_capacities(self, p: Params) -> Params:
        self._refuse_if_closing()
        record = self._ready_for_change(p["EndpointName"])
        name = record["EndpointName"]
        live = self.endpoints[name]
        weights, counts = {}, {}
        for change in p["DesiredWeightsAndCapacities"]:
            variant = change["VariantName"]
            if live.spec.variant(variant) is None:
                raise AwsError(
                    "ValidationException",
                    f"The variant name(s) [{variant}] is/are not present in the endpoint {name}.",
                )
            if "DesiredWeight" in change:
                weights[variant] = float(change["DesiredWeight"])
            if "DesiredInstanceCount" in change:
                counts[variant] = int(change["DesiredInstanceCount"])
        _check_desired(live.spec, weights, counts)
        stage_serverless_update(live, p["DesiredWeightsAndCapacities"])  # ServerlessUpdateConfig
        self._set_status(record, "Updating", FailureReason=None)
        self._background(self._reconfigure(name, weights, counts), f"weights-{name}")
        return {"EndpointArn": record["EndpointArn"]}

    async def delete_endpoint(self, p: Params) -> Params:
        self._refuse_if_closing()
        record = self._require(Kind.ENDPOINT, "endpoint", p["EndpointName"])
        name = record["EndpointName"]
        if record["EndpointStatus"] in _BUSY:
            if record["EndpointStatus"] != "Creating" or not self._made_by_serve(record):
                raise in_progress(name)
            await self._cancel(f"create-{name}", f"recover-{name}")
        self._set_status(record, "Deleting")
        for observe in self.observers:
            observe("deleted", name, record["EndpointConfigName"])
        self._background(self._tear_down(name), f"delete-{name}")
        return {}

    async def list_endpoints(self, p: Params) -> Params:
        return self._list(
            Kind.ENDPOINT,
            p,
            "Endpoints",
            ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus"),
        )

    # ---- the service's own life ----------------------------------------------------------
    async def recover(
        self,
        found: Sequence[ContainerInfo] = (),
        logs_since: Callable[[str], float | None] | None = None,
    ) -> None:
        """After a restart: bring back every endpoint that was serving or on its way, as it
        was deployed (weights and counts included), even if its config or models were
        deleted since, as AWS keeps such an endpoint running.

        ``found``: the containers the previous run left (by its ``smlocal.session`` label;
        still running after a SIGKILL). Each endpoint brought back adopts those of its fleet
        that answer /ping and starts fresh ones for the rest; every other container (of an
        endpoint deleted or failed, of an older fleet, unhealthy, surplus, exited) is removed.
        ``logs_since(name)``: when the endpoint's log last got a line, so an adopted
        container's log goes on from there.
        """
        by_endpoint: dict[str, list[ContainerInfo]] = {}
        for info in found:
            by_endpoint.setdefault(info.labels.get(LABEL_ENDPOINT, ""), []).append(info)
        for record in self.store.all(Kind.ENDPOINT):
            name, status = record["EndpointName"], record["EndpointStatus"]
            if status == "Deleting" or self._orphaned_by_serve(record):
                # A foreground serve's endpoint whose serve died with it: nobody serves it.
                self._set_status(record, "Deleting")
                self._background(self._tear_down(name), f"delete-{name}")
                continue
            if status not in ("InService", "Creating", "Updating"):
                continue
            try:
                spec = EndpointSpec.model_validate(record[_DEPLOYED]["spec"])
            except Exception as error:  # a record this version cannot run: that endpoint fails
                self._set_status(record, "Failed", FailureReason=f"cannot be restored: {error}")
                continue
            extra: dict[str, Any] = {}
            if status == "Updating":
                extra["FailureReason"] = (
                    "smlocal was stopped during an update of this endpoint; it came back on its "
                    "previous configuration"
                )
            adopt = by_endpoint.pop(name, [])
            log.info(
                "endpoint %s was %s: bringing it back (%d container(s) of it still there)",
                name,
                status,
                len(adopt),
            )
            self._set_status(record, "Creating" if status == "Creating" else "Updating", **extra)
            since = logs_since(name) if logs_since is not None and adopt else None
            self._background(self._bring_up(name, spec, adopt, since), f"recover-{name}")
        rest = [info for group in by_endpoint.values() for info in group]
        if rest:
            log.warning("removing %d container(s) an earlier run of this service left", len(rest))
            await asyncio.to_thread(remove_containers, self.backend, rest)

    async def close(self) -> None:
        """Stop every container (graceful); records stay, so a restart brings them back.

        Deletions under way finish (their containers are on their way out anyway); creations
        and updates are cancelled, which removes the containers they had started.
        """
        self.closing = True
        tasks = list(self._tasks)
        for task in tasks:
            if not task.get_name().startswith("delete-"):
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(e.stop() for e in self.endpoints.values()))
        self.endpoints.clear()

    # ---- background work -----------------------------------------------------------------
    def _orphaned_by_serve(self, record: dict[str, Any]) -> bool:
        tags, _ = self.store.list_tags(record["EndpointArn"], 50, None)
        owner = next((t["Value"] for t in tags if t.get("Key") == ATTACHED_TAG), None)
        if owner is None or identity_alive(owner):
            return False
        log.info(
            "endpoint %s: the serve that owned it (%s) is gone; deleting it",
            record["EndpointName"],
            owner,
        )
        return True

    def _made_by_serve(self, record: dict[str, Any]) -> bool:
        tags, _ = self.store.list_tags(record["EndpointArn"], 50, None)
        return any(tag.get("Key") == SERVE_TAG for tag in tags)

    async def _cancel(self, *names: str) -> None:
        """Cancel the named background work and wait for it (a cancelled start removes the
        containers it had started)."""
        tasks = [task for task in self._tasks if task.get_name() in names]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _background(self, work: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(
        self,
        spec: EndpointSpec,
        adopt: Sequence[ContainerInfo] = (),
        logs_since: float | None = None,
    ) -> Endpoint:
        inspect = getattr(self.backend, "image_info", None)
        if inspect is not None:
            for warning in placement_warnings(spec, inspect):
                log.warning("endpoint %s: %s", spec.name, warning)
        try:
            # A multi-model variant's models are fetched per request, not staged up front.
            sources = {v.name: None if v.multi_model else v.model for v in spec.variants}
            models = await stage_models(sources, self.cache_dir)
        except BaseException:
            # The endpoint never got them: nobody else would remove them.
            await asyncio.shield(asyncio.to_thread(remove_containers, self.backend, adopt))
            raise
        kind: Callable[..., Endpoint] = ServerlessEndpoint if is_serverless(spec) else Endpoint
        if is_multi_model(spec):
            kind = functools.partial(MultiModelEndpoint, cache_dir=self.cache_dir)
        endpoint = kind(
            spec,
            self.backend,
            models,
            settings=self.settings,
            log_sink=self._log_sink(spec.name),
            session_id=self.session_id,
        )
        try:
            await endpoint.start(adopt, logs_since=logs_since)
        except BaseException:
            await endpoint.stop()
            raise
        return endpoint

    async def _bring_up(
        self,
        name: str,
        spec: EndpointSpec,
        adopt: Sequence[ContainerInfo] = (),
        logs_since: float | None = None,
    ) -> None:
        try:
            endpoint = await self._start(spec, adopt, logs_since)
        except SmlocalError as error:
            self._fail(name, error)
            return
        self.endpoints[name] = endpoint
        self._update(name, EndpointStatus="InService")

    async def _blue_green(
        self, name: str, spec: EndpointSpec, specified: dict[str, str], config_name: str
    ) -> None:
        try:
            green = await self._start(spec)
        except SmlocalError as error:
            # The blue fleet never stopped serving: back to InService, with the reason.
            self._update(name, EndpointStatus="InService", FailureReason=_reason(error))
            return
        blue = self.endpoints.get(name)
        self.endpoints[name] = green  # traffic moves at once (ALL_AT_ONCE)
        if blue is not None:
            # Requests already routed to blue finish there: its containers get SIGTERM
            # only after a short drain, and then the grace period. Blue stops even when the
            # service is stopping meanwhile: it is in no map any more, nobody else would.
            try:
                await asyncio.sleep(BLUE_DRAIN_S)
            finally:
                await blue.stop()
        # As AWS does: InService once the old fleet is gone.
        self._update(
            name,
            EndpointStatus="InService",
            EndpointConfigName=config_name,
            **{_DEPLOYED: _deployed(spec, specified)},
        )

    async def _reconfigure(
        self, name: str, weights: dict[str, float], counts: dict[str, int]
    ) -> None:
        endpoint = self.endpoints[name]
        try:
            await endpoint.reconfigure(weights, counts)
        except SmlocalError as error:
            self._update(name, EndpointStatus="InService", FailureReason=_reason(error))
            return
        record = self.store.get(Kind.ENDPOINT, name) or {}
        specified = (record.get(_DEPLOYED) or {}).get("specified", {})
        self._update(
            name, EndpointStatus="InService", **{_DEPLOYED: _deployed(endpoint.spec, specified)}
        )

    async def _tear_down(self, name: str) -> None:
        endpoint = self.endpoints.pop(name, None)
        if endpoint is not None:
            await endpoint.stop()
        record = self.store.get(Kind.ENDPOINT, name)
        if record is not None:
            self.store.delete_all_tags(record["EndpointArn"])
        self.store.delete(Kind.ENDPOINT, name)

    # ---- records -------------------------------------------------------------------------
    def _spec(self, name: str, config_name: str) -> tuple[EndpointSpec, dict[str, str]]:
        """The spec to run, and each variant's image as the Model names it."""
        config = self._require(Kind.ENDPOINT_CONFIG, "endpoint-config", config_name)
        models = {}
        for variant in config["ProductionVariants"]:
            model_name = variant.get("ModelName")
            if not model_name:
                raise AwsError(
                    "ValidationException",
                    f"Variant {variant.get('VariantName')} of endpoint configuration "
                    f"{config_name} names no ModelName.",
                )
            models[model_name] = self._require(Kind.MODEL, "model", model_name)
        spec = endpoint_spec(name, config, models, self._resolve_image)
        if spec.invocation_timeout_s != self.invocation_timeout_s:
            # A service setting (`smlocal server --invocation-timeout`): AWS fixes it at 60 s.
            spec = spec.model_copy(update={"invocation_timeout_s": self.invocation_timeout_s})
        specified = {
            v["VariantName"]: str(container_of(models[v["ModelName"]]).get("Image"))
            for v in config["ProductionVariants"]
        }
        for v in config["ProductionVariants"]:  # the MME capability label (AWS's refusal)
            running = spec.variant(v["VariantName"])
            container = container_of(models[v["ModelName"]])
            image_info = getattr(self.backend, "image_info", None)
            if running is not None:
                check_multi_model_image(
                    specified[v["VariantName"]], running.image, container, image_info
                )
        return spec, specified

    def _refuse_if_closing(self) -> None:
        if self.closing:
            raise AwsError("ServiceUnavailable", "smlocal is stopping; try again once it runs.")

    def _ready_for_change(self, name: str) -> dict[str, Any]:
        record = self._require(Kind.ENDPOINT, "endpoint", name)
        if record["EndpointStatus"] in _BUSY or record["EndpointName"] not in self.endpoints:
            if record["EndpointStatus"] == "Failed":
                raise AwsError(
                    "ValidationException",
                    f'Cannot update failed endpoint "{record["EndpointArn"]}"; delete it and '
                    "create it again.",
                )
            raise in_progress(name)
        return record

    def _set_status(self, record: dict[str, Any], status: str, **extra: Any) -> None:
        self._update(record["EndpointName"], EndpointStatus=status, **extra)

    def _update(self, name: str, **changes: Any) -> None:
        record = self.store.get(Kind.ENDPOINT, name)
        if record is None:
            return
        record.update(changes, LastModifiedTime=time.time())
        record = {k: v for k, v in record.items() if v is not None}
        self.store.replace(Kind.ENDPOINT, name, record, status=record["EndpointStatus"])

    def _fail(self, name: str, error: SmlocalError) -> None:
        log.error("endpoint %s failed: %s", name, error)
        self._update(name, EndpointStatus="Failed", FailureReason=_reason(error))

    def _variants(self, endpoint: Endpoint, specified: dict[str, str]) -> list[dict[str, Any]]:
        variants = []
        for variant in endpoint.spec.variants:
            variants.append(
                {
                    "VariantName": variant.name,
                    "DeployedImages": [
                        {
                            "SpecifiedImage": specified.get(variant.name, variant.image),
                            "ResolvedImage": variant.image,
                            "ResolutionTime": endpoint.created_at,
                        }
                    ],
                    "CurrentWeight": variant.weight,
                    "DesiredWeight": variant.weight,
                    "CurrentInstanceCount": len(endpoint.healthy(variant.name)),
                    "DesiredInstanceCount": variant.instance_count,
                }
            )
        serverless_summaries(endpoint, variants)
        return variants


def _deployed(spec: EndpointSpec, specified: dict[str, str]) -> dict[str, Any]:
    """What runs, kept with the endpoint so a restart brings back exactly that."""
    return {"spec": spec.model_dump(mode="json"), "specified": specified}


def _check_desired(spec: EndpointSpec, weights: dict[str, float], counts: dict[str, int]) -> None:
    """The changed endpoint must still be one CreateEndpoint would accept."""
    from smlocal.emulator.errors import ConfigError
    from smlocal.emulator.spec import build_spec

    zero = [name for name, count in counts.items() if count == 0]
    if zero and not spec.asynchronous:
        # AWS's wording for this refusal is UNCONFIRMED (scale to zero is for async endpoints).
        raise AwsError(
            "ValidationException",
            f"DesiredInstanceCount 0 for variant(s) {', '.join(zero)} of endpoint {spec.name}: "
            "only an asynchronous inference endpoint can scale to zero instances.",
        )

    variants = [
        {
            **v.model_dump(),
            "weight": weights.get(v.name, v.weight),
            "instance_count": counts.get(v.name, v.instance_count),
        }
        for v in spec.variants
    ]
    try:
        build_spec(**{**spec.model_dump(), "variants": variants})
    except ConfigError as error:
        raise AwsError("ValidationException", str(error)) from None


def _reason(error: SmlocalError) -> str:
    """AWS-style FailureReason plus what smlocal knows: exit code and last log lines."""
    reason = str(error)
    logs = getattr(error, "logs", "")
    if logs and logs.strip():
        tail = "\n".join(logs.strip().splitlines()[-_TAIL_LINES:])
        reason = f"{reason}\nlast container log lines:\n{tail}"
    if len(reason) <= _MAX_REASON:
        return reason
    # FailureReason is at most 1024 characters: keep the head (what failed) and the tail (the
    # container's last lines, the useful ones).
    head, tail = reason[: _MAX_REASON // 3], reason[-(_MAX_REASON * 2 // 3 - 5) :]
    return f"{head} ... {tail}"
