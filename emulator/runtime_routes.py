"""Which runtime-API route a request names, by its method and raw path, as AWS routes it.

The operations and their paths come from botocore's ``sagemaker-runtime`` model
(``POST /endpoints/{EndpointName}/invocations``, ``.../invocations-response-stream``,
``.../async-invocations``), beside smlocal's own routes (``GET /ping``, ``POST /invocations``,
``GET /metrics``, ``GET /smlocal/endpoints``). The EndpointName label is one segment of the
*raw* path, percent-decoded: boto3 sends the name ``a/b`` as ``a%2Fb``, so it reaches the
endpoint-name rule (a ValidationError naming the pattern, as AWS answers) instead of falling
through to a 404. A path or method no route has (``/endpoints/a/b/invocations``,
``GET /endpoints/x/invocations``, ``POST /ping``) is AWS's ``UnknownOperationException``
(404), never a text/plain page.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import unquote

import botocore.session

from smlocal.emulator.aws_errors import unknown_operation

__all__ = ["SMLOCAL_ROUTES", "Route", "endpoint_operations", "route"]

# smlocal's conveniences beside AWS's operations: (method, path) -> route name.
SMLOCAL_ROUTES = {
    ("GET", "/ping"): "Ping",
    ("POST", "/invocations"): "Invocations",
    ("GET", "/metrics"): "Metrics",
    ("GET", "/smlocal/endpoints"): "Status",
}
_PREFIX = "/endpoints/"
_LABEL = "{EndpointName}"
_SHOWN_PATH = 200  # a refusal quotes at most this much of the path it refuses


@dataclass(frozen=True)
class Route:
    operation: str  # InvokeEndpoint, ..., or one of SMLOCAL_ROUTES' names
    endpoint_name: str | None = None  # decoded; not yet checked against the name rule


@functools.cache
def endpoint_operations() -> dict[str, tuple[str, str]]:
    """``{"invocations": ("InvokeEndpoint", "POST"), ...}``: the last path segment of each
    ``/endpoints/{EndpointName}/...`` operation in botocore's model, with its method."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    operations = {}
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = str(http["requestUri"])
        if not uri.startswith(_PREFIX + _LABEL + "/"):  # pragma: no cover - all of them do
            continue
        operations[uri[len(_PREFIX + _LABEL + "/") :]] = (name, str(http["method"]))
    return operations


def _served() -> str:
    aws = [f"{method} /endpoints/{{EndpointName}}/{suffix}" for suffix, (_, method) in
           endpoint_operations().items()]  # fmt: skip
    ours = [f"{method} {path}" for method, path in SMLOCAL_ROUTES]
    return ", ".join(aws + ours)


def route(method: str, raw_path: str) -> Route:
    """The route of ``method`` on ``raw_path`` (undecoded, no query); AwsError if none."""
    found = SMLOCAL_ROUTES.get((method, raw_path))
    if found is not None:
        return Route(found)
    if raw_path.startswith(_PREFIX):
        label, slash, suffix = raw_path[len(_PREFIX) :].partition("/")
        operation = endpoint_operations().get(suffix) if slash else None
        if operation is not None and method == operation[1]:
            return Route(operation[0], unquote(label, errors="replace"))
    shown = raw_path if len(raw_path) <= _SHOWN_PATH else raw_path[:_SHOWN_PATH] + "..."
    raise unknown_operation(method, shown, _served())
