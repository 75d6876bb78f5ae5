"""Asynchronous inference on the local service (``AsyncInferenceConfig``; reference §C).

``InvokeEndpointAsync`` (``POST /endpoints/{name}/async-invocations``) answers 202 at once with
the ``InferenceId`` and the output / failure locations; the request waits in a queue per
endpoint (SQLite, ``$SMLOCAL_HOME/service/async.db``, so a restart or a SIGKILL loses none) and a
dispatcher hands requests, in arrival order, to the endpoint's healthy instances with at most
``ClientConfig.MaxConcurrentInvocationsPerInstance`` in flight on each. A worker reads the
input from S3 (boto3: real S3, or a moto server through ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``), calls the container's ``/invocations`` with the request's
``InvocationTimeoutSeconds``, writes the answer to ``S3OutputPath`` or the failure to
``S3FailurePath``, and publishes the SNS notification (SuccessTopic / ErrorTopic) in AWS's JSON.
This module owns the dispatch and the workers; their S3/SNS I/O and AWS's message shapes are
:mod:`.async_io`, the container slots :mod:`.async_slots`, the queue and what a request holds
:mod:`.async_queue`, the HTTP routes :mod:`.async_routes`, the metrics :mod:`.async_metrics`.

Exactly one outcome per accepted request: a row is ``queued``, then ``running``, then
``done``; the outcome's object name is fixed when the request is accepted, so writing it again
overwrites it. After a SIGKILL, ``running`` rows go back to the queue marked ``recovered``; a
recovered row whose output or failure object already exists is finished without running
again (so a request that succeeded before the kill never also gets a failure object).

Documented choices where AWS is UNCONFIRMED (each one constant below):

* Object names: ``<S3OutputPath>[/<S3OutputPathExtension>]/<key>.out`` and
  ``<S3FailurePath>[/ext]/<key>-error.out``, ``key`` being the ``Filename`` header (without its
  extension for the failure object) or else a fresh UUID, which is also the InferenceId when
  the client sent none. Without an ``S3FailurePath`` failures go under ``S3OutputPath``.
* A failure object holds the container's error body when it answered, else the reason text.
* The success message carries the answer (≤128 KB) as ``responseBody`` ``{"content": …,
  "encoding": "UTF8"|"BASE64"}`` when ``IncludeInferenceResponseIn`` names the topic.
* ``MaxConcurrentInvocationsPerInstance`` defaults to 4 when unset ("SageMaker chooses").
* InvokeEndpoint on an async endpoint and InvokeEndpointAsync on a real-time one answer
  ValidationError with smlocal's own wording.
* Requests of a deleted endpoint are dropped from the queue (no outcome object).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

from smlocal.emulator.aws_errors import ACCOUNT_ID, validation_error
from smlocal.emulator.capture_writer import INFERENCE_ID_HEADER
from smlocal.emulator.endpoint import Endpoint, EndpointStatus, Instance
from smlocal.emulator.request_rules import invoke_rules
from smlocal.emulator.service.async_io import TEST_NOTIFICATION, AwsIo, Outcome, inference_result
from smlocal.emulator.service.async_metrics import VariantCounters, render
from smlocal.emulator.service.async_queue import (
    INT_HEADERS,
    PATH_HEADERS,
    AsyncQueue,
    QueuedRequest,
    int_header,
    join_location,
    rules_of_ints,
    split_s3,
)
from smlocal.emulator.service.async_slots import PREFETCH_FACTOR, ContainerSlots
from smlocal.emulator.service.store import Kind, Store

__all__ = ["AsyncInference", "split_s3"]

log = logging.getLogger(__name__)

OUTPUT_SUFFIX = ".out"
FAILURE_SUFFIX = "-error.out"
DEFAULT_MAX_CONCURRENT_PER_INSTANCE = 4
DEFAULT_TTL_S = 21600
DEFAULT_INVOCATION_TIMEOUT_S = 900
_POLL_S = 0.25


def _now() -> float:
    """The clock of queue ages and TTLs (one place, so tests can move it)."""
    return time.time()


class AsyncInference:
    """The queue, the dispatcher and the workers of every async endpoint of one service."""

    def __init__(
        self,
        store: Store,
        endpoints: Mapping[str, Endpoint],
        db_path: Path,
        *,
        clients: Callable[[str], Any] | None = None,
    ) -> None:
        self.store = store
        self.endpoints = endpoints
        self.queue = AsyncQueue(db_path)
        self.aws = AwsIo(clients)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="smlocal-async")
        self._configs: weakref.WeakKeyDictionary[Endpoint, dict[str, Any] | None] = (
            weakref.WeakKeyDictionary()
        )
        self.slots = ContainerSlots()
        self._taken: dict[str, int] = {}  # endpoint -> requests taken from its queue, unfinished
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self.counters: dict[tuple[str, str], VariantCounters] = {}

    # ---- life --------------------------------------------------------------------------
    def start(self) -> None:
        recovered = self.queue.recover()
        if recovered:
            log.info("%d async request(s) were in flight when the service stopped: re-queued",
                     recovered)  # fmt: skip
        self._dispatcher = asyncio.create_task(self._dispatch(), name="async-dispatcher")

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        tasks = [*self._tasks, *([self._dispatcher] if self._dispatcher else [])]
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.queue.close()

    def on_endpoint_event(self, event: str, name: str, config_name: str) -> None:
        """HostingService's hook: ``created`` / ``updated`` / ``deleted``."""
        if event == "deleted":
            dropped = self.queue.drop(name)
            if dropped:
                log.warning(
                    "endpoint %s deleted: %d queued async request(s) dropped", name, dropped
                )
            return
        config = self.store.get(Kind.ENDPOINT_CONFIG, config_name) or {}
        async_config = config.get("AsyncInferenceConfig")
        if not async_config:
            return
        if event == "created":
            self.queue.drop(name)  # an earlier endpoint of that name left them
        self.queue.remember_config(name, async_config)
        notification = (async_config.get("OutputConfig") or {}).get("NotificationConfig") or {}
        for topic in {notification.get("SuccessTopic"), notification.get("ErrorTopic")} - {None}:
            self._pool.submit(self.aws.publish_quietly, str(topic), TEST_NOTIFICATION)

    # ---- configuration -----------------------------------------------------------------
    def config_of(self, endpoint: Endpoint) -> dict[str, Any] | None:
        """The endpoint's AsyncInferenceConfig (None: a real-time endpoint)."""
        try:
            return self._configs[endpoint]
        except KeyError:
            pass
        name = endpoint.spec.name
        record = self.store.get(Kind.ENDPOINT, name) or {}
        config = self.store.get(Kind.ENDPOINT_CONFIG, record.get("EndpointConfigName", ""))
        found: dict[str, Any] | None
        if config is not None:
            found = config.get("AsyncInferenceConfig") or None
            if found is not None:
                self.queue.remember_config(name, found)
        else:  # the config was deleted since: what it said when it was deployed
            found = self.queue.config(name)
        self._configs[endpoint] = found
        return found

    def _counters(self, endpoint: str, variant: str) -> VariantCounters:
        return self.counters.setdefault((endpoint, variant), VariantCounters())

    # ---- submission --------------------------------------------------------------------
    def submit(self, endpoint: Endpoint, headers: Mapping[str, str], body: bytes) -> QueuedRequest:
        """Validate and queue one InvokeEndpointAsync request (AwsError if refused)."""
        name = endpoint.spec.name
        config = self.config_of(endpoint)
        if config is None:
            raise validation_error(
                f"Endpoint {name} of account {ACCOUNT_ID} is not configured for asynchronous "
                "inference: call InvokeEndpoint."
            )
        rules = invoke_rules("InvokeEndpointAsync")
        strings = {k: v for k, v in headers.items() if k not in INT_HEADERS.values()}
        forwarded = rules.forwarded_headers(strings)
        ints = {member: int_header(rules_of_ints(), member, headers) for member in INT_HEADERS}
        input_location = forwarded.pop("x-amzn-sagemaker-inputlocation", None)
        if body and input_location:
            raise validation_error("InputLocation and Body are mutually exclusive; set one.")
        if not input_location:
            raise validation_error(
                "1 validation error detected: Value null at 'inputLocation' failed to satisfy "
                "constraint: Member must not be null"
            )
        if not input_location.startswith("s3://"):
            raise validation_error(
                f"InputLocation {input_location} is not an s3:// location (smlocal reads s3:// "
                "input locations only)."
            )
        extension = forwarded.pop(PATH_HEADERS["S3OutputPathExtension"], "")
        filename = forwarded.pop(PATH_HEADERS["Filename"], "")
        key = str(uuid.uuid4())
        inference_id = forwarded.pop("x-amzn-sagemaker-inference-id", None) or key
        output = config.get("OutputConfig") or {}
        output_path = str(output.get("S3OutputPath") or "")
        failure_path = str(output.get("S3FailurePath") or output_path)
        stem = filename.rsplit(".", 1)[0] if filename else key
        request = QueuedRequest(
            key=key,
            endpoint=name,
            inference_id=inference_id,
            input_location=input_location,
            output_location=join_location(output_path, extension, filename or key + OUTPUT_SUFFIX),
            failure_location=join_location(failure_path, extension, stem + FAILURE_SUFFIX),
            headers=forwarded,
            ttl_s=ints["RequestTTLSeconds"] or DEFAULT_TTL_S,
            timeout_s=ints["InvocationTimeoutSeconds"] or DEFAULT_INVOCATION_TIMEOUT_S,
            received_at=_now(),
            config=config,
        )
        self.queue.add(request)
        self._wake.set()
        return request

    # ---- dispatch ----------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _POLL_S)
            self._wake.clear()
            try:
                for name in self.queue.waiting_endpoints():
                    self._dispatch_one(name)
            except Exception:  # never let the dispatcher die
                log.exception("async dispatch failed; retrying")

    def _dispatch_one(self, name: str) -> None:
        now = _now()
        for request in self.queue.take_expired(name, now):
            self._spawn(request, None)
        endpoint = self.endpoints.get(name)
        if endpoint is None or endpoint.status != EndpointStatus.IN_SERVICE:
            return
        room = self.slots.capacity(endpoint, self._cap(endpoint)) * PREFETCH_FACTOR
        for request in self.queue.take(name, room - self._taken.get(name, 0)):
            self._spawn(request, endpoint)

    def _cap(self, endpoint: Endpoint) -> int:
        config = self.config_of(endpoint) or {}
        return int(
            (config.get("ClientConfig") or {}).get("MaxConcurrentInvocationsPerInstance")
            or DEFAULT_MAX_CONCURRENT_PER_INSTANCE
        )

    def _spawn(self, request: QueuedRequest, endpoint: Endpoint | None) -> None:
        self._taken[request.endpoint] = self._taken.get(request.endpoint, 0) + 1
        ticket = self.slots.ticket(request.endpoint) if endpoint is not None else 0
        task = asyncio.create_task(self._process(request, endpoint, ticket))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(
        self, request: QueuedRequest, endpoint: Endpoint | None, ticket: int
    ) -> None:
        try:
            if request.recovered:
                done = await self._run_sync(self.aws.existing_outcome, request)
                if done is not None:
                    self.queue.finish(request.key, done)
                    return
            outcome: Outcome | None
            if endpoint is None:
                outcome, counters = self._expired(request)
            else:
                outcome, counters = await self._run(request, endpoint, ticket)
            if outcome is None:  # the endpoint went away meanwhile
                self.queue.requeue(request.key)
                return
            await self._deliver(request, outcome, counters)
            total = int((_now() - request.received_at) * 1000)
            counters.total_processing_ms.add(total)
        except asyncio.CancelledError:
            raise  # the service stops: the row stays 'running' and is re-run at the next start
        except Exception:
            log.exception("async request %s of %s failed unexpectedly; re-queued",
                          request.inference_id, request.endpoint)  # fmt: skip
            self.queue.requeue(request.key)
        finally:
            self.slots.withdraw(request.endpoint, ticket)
            self._taken[request.endpoint] -= 1
            self._wake.set()

    async def _run(
        self, request: QueuedRequest, endpoint: Endpoint, ticket: int
    ) -> tuple[Outcome | None, VariantCounters]:
        """Input from S3 (outside the container slot), then the container in a slot of its
        own; the counters are those of the variant that served it ("-" before one did)."""
        try:
            body = await self._run_sync(self.aws.download, request.input_location)
        except Exception as error:
            counters = self._counters(request.endpoint, "-")
            counters.download_failures += 1
            counters.failures += 1
            reason = f"ClientError: Failed to download the input from {request.input_location}"
            return Outcome(False, b"", "text/plain", f"{reason}: {error}"), counters

        def still_current() -> bool:
            return self.endpoints.get(request.endpoint) is endpoint

        cap = self._cap(endpoint)
        async with self.slots.hold(endpoint, cap, ticket, still_current) as instance:
            if instance is None:
                return None, self._counters(request.endpoint, "-")
            if _now() - request.received_at > request.ttl_s:  # waited for a slot too long
                return self._expired(request)
            counters = self._counters(request.endpoint, instance.variant)
            counters.time_in_backlog_ms.add(int((_now() - request.received_at) * 1000))
            return await self._invoke(request, endpoint, instance, body, counters), counters

    def _expired(self, request: QueuedRequest) -> tuple[Outcome, VariantCounters]:
        counters = self._counters(request.endpoint, "-")
        counters.expired += 1
        reason = (
            f"Request expired: it waited in the queue longer than its RequestTTLSeconds "
            f"({request.ttl_s} s)."
        )
        return Outcome(False, b"", "text/plain", reason, "expired"), counters

    async def _run_sync(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def _invoke(
        self,
        request: QueuedRequest,
        endpoint: Endpoint,
        instance: Instance,
        body: bytes,
        counters: VariantCounters,
    ) -> Outcome:
        started = time.perf_counter()
        try:
            async with endpoint.http.post(
                instance.url("/invocations"),
                data=body,
                headers=dict(request.headers),
                timeout=aiohttp.ClientTimeout(total=request.timeout_s),
            ) as response:
                payload = await response.read()
                status = response.status
                content_type = response.headers.get("Content-Type", "application/octet-stream")
        except TimeoutError:
            counters.failures += 1
            return Outcome(
                False,
                b"",
                "text/plain",
                f"ClientError: Invocation timed out while waiting for a response from the model "
                f"container (InvocationTimeoutSeconds {request.timeout_s}).",
            )
        except (aiohttp.ClientError, ConnectionError) as error:
            counters.failures += 1
            return Outcome(
                False,
                b"",
                "text/plain",
                f"ClientError: Received server error (0) from model: connection failed "
                f"({error.__class__.__name__}). See the smlocal log of endpoint "
                f"{request.endpoint} for more information.",
            )
        finally:
            counters.model_latency_us.add(int((time.perf_counter() - started) * 1e6))
        if status >= 300:
            counters.failures += 1
            kind = "client" if 400 <= status < 500 else "server"
            return Outcome(
                False,
                payload,
                content_type,
                f"ClientError: Received {kind} error ({status}) from model. See the smlocal log "
                f"of endpoint {request.endpoint} (`smlocal logs {request.endpoint}`) for more "
                "information.",
            )
        counters.processed += 1
        if endpoint.capture is not None:  # DataCaptureConfig: asynchronous requests too
            headers = {**request.headers, INFERENCE_ID_HEADER: request.inference_id}
            endpoint.capture.offer_answer(instance.variant, headers, body, content_type, payload)
        return Outcome(True, payload, content_type)

    async def _deliver(
        self, request: QueuedRequest, outcome: Outcome, counters: VariantCounters
    ) -> None:
        location = request.output_location if outcome.ok else request.failure_location
        body = outcome.body if outcome.body else outcome.reason.encode()
        try:
            await self._run_sync(self.aws.upload, location, body, outcome.content_type)
        except Exception as error:
            counters.upload_failures += 1
            log.error("async request %s: cannot write %s: %s", request.inference_id, location,
                      error)  # fmt: skip
            self.queue.finish(request.key, "undeliverable")
            return
        self.queue.finish(request.key, "output" if outcome.ok else outcome.kind)
        notification = (request.config.get("OutputConfig") or {}).get("NotificationConfig") or {}
        topic = notification.get("SuccessTopic" if outcome.ok else "ErrorTopic")
        include = notification.get("IncludeInferenceResponseIn") or []
        wanted = "SUCCESS_NOTIFICATION_TOPIC" if outcome.ok else "ERROR_NOTIFICATION_TOPIC"
        message = inference_result(request, outcome, include_response=wanted in include)
        if topic:
            try:
                await self._run_sync(self.aws.publish, str(topic), message)
            except Exception as error:
                counters.notification_failures += 1
                log.error("async request %s: cannot notify %s: %s", request.inference_id, topic,
                          error)  # fmt: skip

    # ---- metrics -----------------------------------------------------------------------
    def prometheus(self) -> str:
        now = _now()
        backlog = self.queue.backlog()
        names = sorted(
            set(backlog)
            | {n for n, e in self.endpoints.items() if self._configs.get(e) is not None}
        )
        if not names and not self.counters:
            return ""
        return render(now, backlog, names, self.endpoints, self.counters)
