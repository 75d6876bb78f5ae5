"""The containers behind a local endpoint, and where ``--direct`` sends Locust instead.

A local runtime API (the service's, or one ``--image`` serves) answers ``GET
/smlocal/endpoints`` with every endpoint it hosts, each instance's container id and the
address the runtime API itself calls it on (:meth:`smlocal.emulator.endpoint.Endpoint.describe`).
Load tests read it for two things: which containers' CPU to measure, and, with ``--direct``,
which ``/invocations`` URLs Locust calls in place of the runtime API: the container alone, as
SageMaker's own front end (which runs on other machines) sees it.

``--direct`` is refused, with a :class:`~smlocal.emulator.errors.ConfigError` (exit 2: nothing
ran), where calling a container would not be the same request: serverless variants (their
containers come and go per request), asynchronous endpoints (the queue is the front end's)
and multi-model ones (the front end loads the target model first), and an endpoint of several
variants without ``--target-variant`` (the weights are the front end's choice).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smlocal.emulator.errors import ConfigError, SmlocalError

__all__ = [
    "Fleet",
    "FleetInstance",
    "FleetVariant",
    "direct_urls",
    "fleet_from_status",
    "read_fleet",
]

STATUS_PATH = "/smlocal/endpoints"
_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class FleetInstance:
    label: str  # "variant/index"
    container_id: str
    url: str  # base URL, no path: http://HOST:PORT
    healthy: bool


@dataclass(frozen=True)
class FleetVariant:
    name: str
    weight: float
    serverless: bool
    multi_model: bool
    instances: tuple[FleetInstance, ...]


@dataclass(frozen=True)
class Fleet:
    endpoint: str
    asynchronous: bool
    variants: tuple[FleetVariant, ...]

    @property
    def container_ids(self) -> tuple[str, ...]:
        """Every container of the endpoint in the rotation (whose CPU the test measures)."""
        return tuple(i.container_id for v in self.variants for i in v.instances if i.healthy)


def _variant(raw: Mapping[str, Any]) -> FleetVariant:
    return FleetVariant(
        name=str(raw["VariantName"]),
        weight=float(raw.get("CurrentWeight", 1.0)),
        serverless=bool(raw.get("Serverless", False)),
        multi_model=bool(raw.get("MultiModel", False)),
        instances=tuple(
            FleetInstance(
                label=str(i["Instance"]),
                container_id=str(i["ContainerId"]),
                url=str(i["Url"]).rstrip("/"),
                healthy=bool(i.get("Healthy", True)),
            )
            for i in raw.get("Instances") or ()
        ),
    )


def fleet_from_status(status: Mapping[str, Any], name: str) -> Fleet | None:
    """Endpoint ``name`` in a status answer (``{"Endpoints": [...]}``), if it is there."""
    for raw in status.get("Endpoints") or ():
        if str(raw.get("EndpointName", "")).lower() == name.lower():
            return Fleet(
                endpoint=str(raw["EndpointName"]),
                asynchronous=bool(raw.get("AsyncInference", False)),
                variants=tuple(_variant(v) for v in raw.get("ProductionVariants") or ()),
            )
    return None


def read_fleet(runtime_url: str, name: str) -> Fleet | None:
    """Endpoint ``name``'s fleet from the runtime API at ``runtime_url``; None when that API
    does not host it or is not smlocal's (no status route: e.g. another emulator)."""
    url = runtime_url.rstrip("/") + STATUS_PATH
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as answer:  # noqa: S310 - http(s) only
            status = json.loads(answer.read())
    except urllib.error.HTTPError:
        return None  # not smlocal's runtime API
    except (OSError, ValueError) as error:
        raise SmlocalError(f"cannot read {url}: {error}") from None
    return fleet_from_status(status, name) if isinstance(status, dict) else None


def _one_variant(fleet: Fleet, target_variant: str | None) -> FleetVariant:
    if target_variant is not None:
        chosen = next((v for v in fleet.variants if v.name == target_variant), None)
        if chosen is None:
            names = ", ".join(v.name for v in fleet.variants)
            raise ConfigError(
                f"endpoint {fleet.endpoint} has no variant {target_variant} (it has {names})"
            )
        return chosen
    serving = [v for v in fleet.variants if v.weight > 0]
    if len(serving) != 1:
        names = ", ".join(v.name for v in serving)
        raise ConfigError(
            f"--direct calls one variant's containers; endpoint {fleet.endpoint} spreads "
            f"traffic over {len(serving)} ({names}): give --target-variant"
        )
    return serving[0]


def direct_urls(fleet: Fleet, target_variant: str | None = None) -> Sequence[str]:
    """The ``/invocations`` URLs ``--direct`` spreads requests over (round-robin, as the
    runtime API does): the chosen variant's healthy instances. ConfigError where a direct
    call would not be what SageMaker does (module docstring)."""
    refuse = "--direct cannot measure "
    if fleet.asynchronous:
        raise ConfigError(
            refuse + f"endpoint {fleet.endpoint}: it is asynchronous, so its queue (the front "
            "end) decides when a request reaches the container; load-test it without --direct"
        )
    variant = _one_variant(fleet, target_variant)
    where = f"variant {variant.name} of {fleet.endpoint}"
    if variant.serverless:
        raise ConfigError(
            refuse + f"{where}: it is serverless, so its containers start and stop per "
            "request; load-test it without --direct"
        )
    if variant.multi_model:
        raise ConfigError(
            refuse + f"{where}: it is multi-model, so the front end loads each request's "
            "TargetModel first; load-test it without --direct"
        )
    healthy = [i.url + "/invocations" for i in variant.instances if i.healthy]
    if not healthy:
        raise SmlocalError(f"{where} has no healthy instance to call directly")
    return healthy
