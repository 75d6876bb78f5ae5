"""smlocal's own client of the local service: what ``serve``, ``ps``, ``stop`` and ``invoke`` do.

``smlocal serve`` turns its EndpointSpec into the calls a user's deployment script makes
(CreateModel per variant, CreateEndpointConfig, CreateEndpoint), each tagged
:data:`~smlocal.emulator.service.resources.SERVE_TAG` with the endpoint's name, so that
``smlocal stop`` deletes the models and config serve made and never one a user made with the
AWS CLI or boto3. All of it goes through boto3 against the service's URL, exactly as a user's
script would, so the CLI exercises the same control plane they do.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smlocal.emulator.errors import ConfigError, SmlocalError
from smlocal.emulator.service.resources import ATTACHED_TAG, SERVE_TAG
from smlocal.emulator.spec import DEFAULT_STARTUP_TIMEOUT_S, EndpointSpec

__all__ = [
    "EndpointRow",
    "ServiceError",
    "check_models",
    "delete_serve_resources",
    "deploy",
    "deploy_requests",
    "describe_or_none",
    "endpoint_rows",
    "runtime_client",
    "sagemaker_client",
    "undeploy",
    "wait_for_async_result",
    "wait_until_settled",
]

_SETTLED = ("InService", "Failed")
_NAME_MAX = 63


class ServiceError(SmlocalError):
    """The service refused or failed a call (its AWS error code and message)."""


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _client(service: str, url: str) -> Any:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    # The service checks no credentials: unsigned, so none is needed (or read) here.
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=url,
        region_name=_region(),
        config=Config(
            signature_version=UNSIGNED,
            retries={"total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=70,
        ),
    )


def sagemaker_client(url: str) -> Any:
    """A boto3 ``sagemaker`` client for the service at ``url``."""
    return _client("sagemaker", url)


def runtime_client(url: str) -> Any:
    """A boto3 ``sagemaker-runtime`` client for the service at ``url``."""
    return _client("sagemaker-runtime", url)


def _unique(base: str, suffix: str) -> str:
    head = base[: _NAME_MAX - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


def _model_names(spec: EndpointSpec, suffix: str) -> list[str]:
    """ENDPOINT-VARIANT-SUFFIX, the endpoint part shortened first so every variant keeps a
    distinct name within 63 characters."""
    names: list[str] = []
    for index, variant in enumerate(spec.variants):
        tail = f"{variant.name[:24].strip('-')}-{suffix}"
        name = _unique(spec.name, tail)
        if name in names:
            name = _unique(spec.name, f"{index}-{tail}")
        names.append(name)
    return names


def _model_location(model: str) -> str:
    """s3:// as given; a local path made absolute (the service's cwd is not ours)."""
    if "://" in model and not model.startswith("file://"):
        return model
    path = Path(model.removeprefix("file://")).expanduser()
    if not path.exists():
        raise ConfigError(f"model {model}: no such file or directory")
    return str(path.resolve())


def check_models(spec: EndpointSpec) -> None:
    """Every local model path exists (ConfigError naming the first that does not)."""
    for variant in spec.variants:
        if variant.model:
            _model_location(str(variant.model))


@dataclass(frozen=True)
class DeployRequests:
    models: list[dict[str, Any]]
    config: dict[str, Any]
    endpoint: dict[str, Any]


def deploy_requests(
    spec: EndpointSpec, suffix: str | None = None, attached_to: str | None = None
) -> DeployRequests:
    """The control-plane calls that deploy ``spec``: one model per variant, one config.
    ``attached_to``: the identity of the foreground serve that owns the endpoint."""
    suffix = suffix or secrets.token_hex(3)
    tags = [{"Key": SERVE_TAG, "Value": spec.name}]
    owner = [{"Key": ATTACHED_TAG, "Value": attached_to}] if attached_to else []
    models, variants = [], []
    for variant, model_name in zip(spec.variants, _model_names(spec, suffix), strict=True):
        container: dict[str, Any] = {"Image": variant.image}
        if variant.model:
            container["ModelDataUrl"] = _model_location(str(variant.model))
        if variant.env:
            container["Environment"] = dict(variant.env)
        models.append({"ModelName": model_name, "PrimaryContainer": container, "Tags": tags})
        production: dict[str, Any] = {
            "VariantName": variant.name,
            "ModelName": model_name,
            "InstanceType": variant.instance_type,
            "InitialInstanceCount": variant.instance_count,
            "InitialVariantWeight": variant.weight,
        }
        if variant.serverless is not None:  # on-demand containers instead of instances
            del production["InstanceType"], production["InitialInstanceCount"]
            production["ServerlessConfig"] = variant.serverless.as_aws()
        if spec.startup_timeout_s != DEFAULT_STARTUP_TIMEOUT_S:
            production["ContainerStartupHealthCheckTimeoutInSeconds"] = int(spec.startup_timeout_s)
        variants.append(production)
    config_name = _unique(spec.name, suffix)
    config: dict[str, Any] = {
        "EndpointConfigName": config_name,
        "ProductionVariants": variants,
        "Tags": tags,
    }
    if spec.capture is not None:  # `smlocal serve --capture`
        config["DataCaptureConfig"] = spec.capture.as_aws()
    return DeployRequests(
        models=models,
        config=config,
        endpoint={
            "EndpointName": spec.name,
            "EndpointConfigName": config_name,
            "Tags": tags + owner,
        },
    )


def _code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def _message(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Message", error))


def _not_found(error: Exception) -> bool:
    return _code(error) == "ValidationException" and _message(error).startswith("Could not find")


def _failure(error: Exception) -> SmlocalError:
    """A service answer as smlocal's error: bad input is a usage error (exit 2)."""
    text = f"{_code(error)}: {_message(error)}"
    return ConfigError(text) if _code(error) == "ValidationException" else ServiceError(text)


def _already_running(name: str, status: str) -> ConfigError:
    return ConfigError(
        f"an endpoint named {name} is already running on the service ({status}); stop it "
        f"with `smlocal stop {name}`, or choose another --name"
    )


def deploy(client: Any, spec: EndpointSpec, attached_to: str | None = None) -> DeployRequests:
    """Create ``spec``'s models, config and endpoint; on any refusal, delete what this call
    made and raise (an existing endpoint of that name is never touched)."""
    from botocore.exceptions import ClientError

    try:
        existing = client.describe_endpoint(EndpointName=spec.name)
    except ClientError as error:
        if not _not_found(error):
            raise _failure(error) from None
    else:
        raise _already_running(spec.name, existing["EndpointStatus"])
    requests = deploy_requests(spec, attached_to=attached_to)
    undo: list[Callable[[], object]] = []
    try:
        for model in requests.models:
            client.create_model(**model)
            undo.append(functools.partial(client.delete_model, ModelName=model["ModelName"]))
        client.create_endpoint_config(**requests.config)
        config_name = requests.config["EndpointConfigName"]
        undo.append(
            functools.partial(client.delete_endpoint_config, EndpointConfigName=config_name)
        )
        client.create_endpoint(**requests.endpoint)
    except BaseException as error:
        if not isinstance(error, ClientError):
            # Ctrl-C (or a lost connection) mid-call: the endpoint may exist by now.
            with contextlib.suppress(Exception):
                undeploy(client, spec.name, timeout_s=30)
        for step in reversed(undo):
            with contextlib.suppress(Exception):
                step()
        if not isinstance(error, ClientError):
            raise
        if "already existing endpoint" in _message(error):
            raise _already_running(spec.name, "Creating") from None
        raise _failure(error) from None
    return requests


def wait_until_settled(
    client: Any,
    name: str,
    on_status: Callable[[str, str], None],
    poll_s: float = 0.1,
) -> dict[str, Any]:
    """Poll DescribeEndpoint until InService or Failed; ``on_status(status, reason)`` on
    each change. The endpoint vanishing meanwhile (deleted elsewhere) is an error."""
    from botocore.exceptions import ClientError

    seen = ""
    while True:
        try:
            answer: dict[str, Any] = client.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if _not_found(error):
                raise SmlocalError(f"endpoint {name} was deleted before it was InService") from None
            raise _failure(error) from None
        status = answer["EndpointStatus"]
        if status != seen:
            on_status(status, answer.get("FailureReason", ""))
            seen = status
        if status in _SETTLED:
            return answer
        time.sleep(poll_s)


def describe_or_none(client: Any, name: str) -> dict[str, Any] | None:
    """DescribeEndpoint's answer, or None when there is no such endpoint."""
    from botocore.exceptions import ClientError

    try:
        answer: dict[str, Any] = client.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if _not_found(error):
            return None
        raise _failure(error) from None
    return answer


def _serve_tag(client: Any, arn: str) -> str | None:
    tags = client.list_tags(ResourceArn=arn).get("Tags", [])
    return next((t["Value"] for t in tags if t["Key"] == SERVE_TAG), None)


def undeploy(
    client: Any,
    name: str,
    timeout_s: float = 60.0,
    poll_s: float = 0.1,
    on_wait: Callable[[str], None] | None = None,
) -> bool:
    """Delete endpoint ``name``, wait until it is gone, then delete the config and models
    ``smlocal serve`` made for it (only those). False if there is no such endpoint."""
    from botocore.exceptions import ClientError

    try:
        record = client.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if _not_found(error):
            return False
        raise _failure(error) from None
    name = record["EndpointName"]
    made_by_serve = _serve_tag(client, record["EndpointArn"]) == name
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.delete_endpoint(EndpointName=name)
            break
        except ClientError as error:
            if _not_found(error):
                break
            # Busy (Updating, or Creating for an endpoint serve did not make): wait for it.
            if "in-progress" not in _message(error):
                raise _failure(error) from None
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"endpoint {name} is still {record['EndpointStatus']} after "
                    f"{timeout_s:g} s; SageMaker deletes an endpoint only once that ends "
                    "(wait longer with --timeout)"
                ) from None
            if on_wait is not None:
                on_wait(record["EndpointStatus"])
                on_wait = None  # said once
            time.sleep(poll_s)
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    try:
        while describe_or_none(client, name) is not None:
            if time.monotonic() > deadline:
                raise SmlocalError(f"endpoint {name} was not deleted within {timeout_s:g} s")
            time.sleep(poll_s)
        if made_by_serve:
            delete_serve_resources(client, name, record["EndpointConfigName"])
    except (EndpointConnectionError, ConnectionClosedError):
        # The deletion was accepted and the service has gone since: a foreground serve's own
        # service ends with its endpoint, everything in it included.
        pass
    return True


def delete_serve_resources(client: Any, name: str, config_name: str) -> None:
    """Delete config ``config_name`` and its models, if ``smlocal serve`` made them for
    endpoint ``name`` (by their tag)."""
    from botocore.exceptions import ClientError

    try:
        config = client.describe_endpoint_config(EndpointConfigName=config_name)
    except ClientError:
        return
    if _serve_tag(client, config["EndpointConfigArn"]) != name:
        return
    for variant in config["ProductionVariants"]:
        try:
            model = client.describe_model(ModelName=variant["ModelName"])
            if _serve_tag(client, model["ModelArn"]) == name:
                client.delete_model(ModelName=variant["ModelName"])
        except ClientError:
            continue
    with contextlib.suppress(ClientError):
        client.delete_endpoint_config(EndpointConfigName=config_name)


@dataclass(frozen=True)
class EndpointRow:
    name: str
    status: str
    variants: str
    created: float
    reason: str


def _pages(client: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator("list_endpoints").paginate():
        yield from page.get("Endpoints", [])


def endpoint_rows(client: Any) -> list[EndpointRow]:
    """Every endpoint on the service, oldest first, with its variants' images and counts."""
    from botocore.exceptions import ClientError

    rows = []
    for summary in _pages(client):
        try:
            detail = client.describe_endpoint(EndpointName=summary["EndpointName"])
        except ClientError:
            continue  # deleted between the list and the describe
        variants = []
        for variant in detail.get("ProductionVariants", []):
            images = variant.get("DeployedImages") or [{}]
            image = images[0].get("SpecifiedImage", "?")
            count = variant.get("CurrentInstanceCount", 0)
            variants.append(f"{variant['VariantName']}: {image} x{count}")
        rows.append(
            EndpointRow(
                name=detail["EndpointName"],
                status=detail["EndpointStatus"],
                variants=", ".join(variants),
                created=_epoch(detail["CreationTime"]),
                reason=str(detail.get("FailureReason", "")),
            )
        )
    return sorted(rows, key=lambda row: row.created)


def _epoch(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def _s3_object(s3: Any, location: str) -> bytes | None:
    """The object at ``s3://bucket/key``, or None while it does not exist."""
    from botocore.exceptions import ClientError

    bucket, _, key = location.removeprefix("s3://").partition("/")
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if _code(error) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise ServiceError(f"cannot read {location}: {_code(error)}: {_message(error)}") from None
    return body


def wait_for_async_result(
    output_location: str,
    failure_location: str | None,
    timeout_s: float,
    on_wait: Callable[[float], None],
    poll_s: float = 0.5,
) -> tuple[bool, bytes]:
    """Poll S3 (boto3's own endpoint settings: real S3, or moto through AWS_ENDPOINT_URL_S3)
    until the answer or the failure object of an async request exists: (succeeded, body).
    ``on_wait(seconds waited)`` about every ``poll_s``."""
    import boto3

    s3 = boto3.client("s3", region_name=_region())
    started = time.monotonic()
    while True:
        answer = _s3_object(s3, output_location)
        if answer is not None:
            return True, answer
        if failure_location:
            failure = _s3_object(s3, failure_location)
            if failure is not None:
                return False, failure
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise SmlocalError(
                f"no result at {output_location} after {timeout_s:g} s (the request may still be "
                "queued: check `smlocal ps` and the endpoint's log)"
            )
        on_wait(waited)
        time.sleep(poll_s)
