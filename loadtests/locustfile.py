"""Locust user that invokes a SageMaker endpoint through the Runtime API.

Run by ``smlocal loadtest`` (which sets the variables below), or by hand — also as a
worker on another machine (see loadtests/README.md)::

    SMLOCAL_LT_ENDPOINT=sklearn-iris SMLOCAL_LT_PAYLOAD=payload.json \
        locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 --headless -u 4 -t 30s

Configuration (environment, so that Locust workers on other machines are set up the same way):

``SMLOCAL_LT_ENDPOINT``        endpoint name; requests go to ``/endpoints/{name}/invocations``
``SMLOCAL_LT_PATH``            a different path instead (e.g. ``/invocations`` on a container)
``SMLOCAL_LT_PAYLOAD``         payload file; ``.jsonl`` for many (see :mod:`loadtests.payloads`)
``SMLOCAL_LT_SPEC``            instead of a payload file: a contract spec whose examples are sent
``SMLOCAL_LT_CONTENT_TYPE``    Content-Type for bodies without their own (application/json)
``SMLOCAL_LT_TARGET_VARIANT``  send every request to this production variant
``SMLOCAL_LT_SIGV4_REGION``    sign each request with SigV4 (service ``sagemaker``) for this
                               region, credentials from the boto3 default chain
``SMLOCAL_LT_DIRECT_URLS``     ``--direct``: containers' own ``/invocations`` URLs, comma-separated,
                               called in turn (round-robin, as the runtime API spreads requests)
                               with the headers the runtime API would forward; any non-2xx
                               answer counts as ``ModelError(NNN)``
``SMLOCAL_LT_LIVE_FILE``       the master (or local runner) writes a JSON snapshot here each second
``SMLOCAL_LT_FINAL_CSV``       at quit, the master (or local runner) writes Locust's final
                               statistics with Locust's own CSV writer to
                               ``{prefix}_final_stats.csv`` / ``{prefix}_final_failures.csv``

Failures are reported to Locust as their kind (:mod:`loadtests.errors`), so Locust's
failures table counts ModelError(500), ValidationError, Throttling, ConnectionError apart.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import threading
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from smlocal.loadtests.errors import InvocationFailure, classify, parse_kind
from smlocal.loadtests.payloads import Payload, load_payloads, load_spec_payloads

__all__ = ["SageMakerUser"]

_LIVE_INTERVAL_S = 1.0


def _invocation_path() -> str:
    path = os.environ.get("SMLOCAL_LT_PATH")
    if path:
        return path
    return f"/endpoints/{os.environ['SMLOCAL_LT_ENDPOINT']}/invocations"


def _payloads() -> list[Payload]:
    variant = os.environ.get("SMLOCAL_LT_TARGET_VARIANT") or None
    spec = os.environ.get("SMLOCAL_LT_SPEC")
    if spec:
        return load_spec_payloads(Path(spec), variant)
    return load_payloads(
        Path(os.environ["SMLOCAL_LT_PAYLOAD"]),
        os.environ.get("SMLOCAL_LT_CONTENT_TYPE") or "application/json",
        variant,
    )


class _Signer:
    """SigV4 for each request with botocore's own signer; credentials never leave botocore."""

    def __init__(self, region: str) -> None:
        import boto3
        from botocore.auth import SigV4Auth

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found by the boto3 default chain")
        self._credentials = credentials
        self._auth_class = SigV4Auth
        self._region = region

    def headers(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        # Frozen per request: refreshable credentials (SSO, roles) may rotate during a run.
        auth = self._auth_class(
            self._credentials.get_frozen_credentials(), "sagemaker", self._region
        )
        auth.add_auth(request)
        return dict(request.headers.items())


# Shared by all users of this process: a cycle gives every payload line the same share.
_PAYLOAD_CYCLE: itertools.cycle[Payload] | None = None
_CYCLE_LOCK = threading.Lock()
# --direct: one shared round-robin over the containers, so each gets the same share of
# requests however many users run (one user still reaches every instance).
_DIRECT_URLS = [u for u in os.environ.get("SMLOCAL_LT_DIRECT_URLS", "").split(",") if u]
_DIRECT_CYCLE = itertools.cycle(_DIRECT_URLS) if _DIRECT_URLS else None


def _next_payload() -> Payload:
    global _PAYLOAD_CYCLE  # noqa: PLW0603 - one cycle per process, built on first use
    with _CYCLE_LOCK:
        if _PAYLOAD_CYCLE is None:
            _PAYLOAD_CYCLE = itertools.cycle(_payloads())
        return next(_PAYLOAD_CYCLE)


class SageMakerUser(FastHttpUser):
    """Invokes the endpoint back to back (no think time: load is set by the user count)."""

    # Locust's own default (60 s) matches SageMaker's invocation timeout.
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self._direct = _DIRECT_CYCLE is not None
        # Direct requests are named by the path alone: one statistics row over all instances.
        self._path = "/invocations" if self._direct else _invocation_path()
        region = os.environ.get("SMLOCAL_LT_SIGV4_REGION")
        self._signer = _Signer(region) if region else None

    @task
    def invoke(self) -> None:
        payload = _next_payload()
        if _DIRECT_CYCLE is not None:
            url, headers = next(_DIRECT_CYCLE), payload.container_headers()
        else:
            url, headers = self._path, payload.headers()
        if self._signer is not None:
            headers = self._signer.headers(f"{self.host}{self._path}", payload.body, headers)
        with self.client.post(
            url,
            data=payload.body,  # type: ignore[arg-type]  # bytes work; the stub says str
            headers=headers,
            name=f"{self._path} [{payload.name}]" if payload.name else self._path,
            catch_response=True,
        ) as response:
            status = response.status_code or 0
            answer_headers = {k: v for k, v in (response.headers or {}).items()}
            kind = classify(status, answer_headers, response.content or b"", direct=self._direct)
            if kind is None:
                response.success()
            else:
                response.failure(InvocationFailure(kind))


def _snapshot(environment: Environment) -> dict[str, Any]:
    total = environment.stats.total
    errors: dict[str, int] = {}
    for entry in environment.stats.errors.values():
        kind = parse_kind(entry.error if isinstance(entry.error, str) else repr(entry.error))
        errors[kind] = errors.get(kind, 0) + entry.occurrences
    runner = environment.runner
    return {
        "users": runner.user_count if runner is not None else 0,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "rps": total.current_rps,
        "p50_ms": total.get_current_response_time_percentile(0.5),
        "p95_ms": total.get_current_response_time_percentile(0.95),
        "p99_ms": total.get_current_response_time_percentile(0.99),
        "errors": errors,
    }


def _write_live(environment: Environment, path: Path) -> None:
    while True:
        gevent.sleep(_LIVE_INTERVAL_S)
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(_snapshot(environment)))
        temp.replace(path)


def _write_final_csv(environment: Environment, prefix: str) -> None:
    # Locust's own `--csv` files are rewritten once a second and not again at exit, so they
    # can miss the last second; these are written after the runner stopped, by the same
    # Locust formatter, from the final statistics.
    formatter = StatsCSV(environment, PERCENTILES_TO_REPORT)
    with Path(f"{prefix}_final_stats.csv").open("w", newline="") as handle:
        formatter.requests_csv(csv.writer(handle))
    with Path(f"{prefix}_final_failures.csv").open("w", newline="") as handle:
        formatter.failures_csv(csv.writer(handle))


_ENVIRONMENT: list[Environment] = []


def _on_init(environment: Environment, **_kwargs: Any) -> None:
    if not isinstance(environment.runner, (MasterRunner, LocalRunner)):
        return  # a worker: the master aggregates and reports
    _ENVIRONMENT.append(environment)
    live = os.environ.get("SMLOCAL_LT_LIVE_FILE")
    if live:
        gevent.spawn(_write_live, environment, Path(live))


def _on_quit(**_kwargs: Any) -> None:
    prefix = os.environ.get("SMLOCAL_LT_FINAL_CSV")
    if prefix and _ENVIRONMENT:
        _write_final_csv(_ENVIRONMENT[0], prefix)


events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
events.quit.add_listener(_on_quit)  # type: ignore[no-untyped-call]
