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
import base64
import contextlib
import datetime
import functools
import json
import logging
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import botocore.session

from smlocal.emulator.aws_errors import ACCOUNT_ID, REGION, AwsError, validation_error
from smlocal.emulator.endpoint import Endpoint, EndpointStatus, Instance
from smlocal.emulator.metrics import LatencyWindow
from smlocal.emulator.request_rules import invoke_rules
from smlocal.emulator.service.store import Kind, Store

__all__ = ["AsyncInference", "AsyncQueue", "AsyncRouting", "QueuedRequest"]

log = logging.getLogger(__name__)

OUTPUT_SUFFIX = ".out"
FAILURE_SUFFIX = "-error.out"
DEFAULT_MAX_CONCURRENT_PER_INSTANCE = 4
DEFAULT_TTL_S = 21600
DEFAULT_INVOCATION_TIMEOUT_S = 900
NOTIFICATION_BODY_LIMIT = 128_000
RESPONSE_BODY_FIELD = "responseBody"
_POLL_S = 0.25
_ASYNC_SUFFIX = "/async-invocations"
_INT_HEADERS = {
    "RequestTTLSeconds": "x-amzn-sagemaker-requestttlseconds",
    "InvocationTimeoutSeconds": "x-amzn-sagemaker-invocationtimeoutseconds",
}
_PATH_HEADERS = {
    "S3OutputPathExtension": "x-amzn-sagemaker-s3outputpathextension",
    "Filename": "x-amzn-sagemaker-filename",
}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _now() -> float:
    """The clock of queue ages and TTLs (one place, so tests can move it)."""
    return time.time()


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// location (smlocal reads and writes s3:// only)")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _join(base: str, *parts: str) -> str:
    path = base.rstrip("/")
    for part in parts:
        if part:
            path += "/" + part.strip("/")
    return path


# ---- the queue ---------------------------------------------------------------------------
@dataclass(frozen=True)
class QueuedRequest:
    key: str
    endpoint: str
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str
    headers: dict[str, str]
    ttl_s: int
    timeout_s: int
    received_at: float
    config: dict[str, Any]
    recovered: bool = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/octet-stream")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, endpoint TEXT NOT NULL,
    state TEXT NOT NULL, recovered INTEGER NOT NULL DEFAULT 0, received_at REAL NOT NULL,
    expires_at REAL NOT NULL, outcome TEXT NOT NULL DEFAULT '', request TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_waiting ON requests (endpoint, state, seq);
CREATE TABLE IF NOT EXISTS configs (endpoint TEXT PRIMARY KEY, config TEXT NOT NULL);
"""


class AsyncQueue:
    """The requests of every async endpoint, in SQLite (WAL, one transaction per change:
    what a call committed survives a SIGKILL, as the service's store does)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def add(self, request: QueuedRequest) -> None:
        payload = {k: v for k, v in request.__dict__.items() if k != "recovered"}
        self._write(
            "INSERT INTO requests (key, endpoint, state, received_at, expires_at, request) "
            "VALUES (?, ?, 'queued', ?, ?, ?)",
            (
                request.key,
                request.endpoint,
                request.received_at,
                request.received_at + request.ttl_s,
                json.dumps(payload),
            ),
        )

    def recover(self) -> int:
        """At start: what a killed run had in flight goes back to the queue."""
        return self._write("UPDATE requests SET state='queued', recovered=1 WHERE state='running'")

    def _claim(self, where: str, args: tuple[Any, ...], limit: int) -> list[QueuedRequest]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    f"SELECT seq, recovered, request FROM requests WHERE {where} "  # noqa: S608
                    "ORDER BY seq LIMIT ?",
                    (*args, limit),
                ).fetchall()
                self._db.executemany(
                    "UPDATE requests SET state='running' WHERE seq=?", [(r[0],) for r in rows]
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [QueuedRequest(**json.loads(r[2]), recovered=bool(r[1])) for r in rows]

    def take(self, endpoint: str, limit: int) -> list[QueuedRequest]:
        """The next ``limit`` queued requests of ``endpoint``, oldest first, now running."""
        if limit <= 0:
            return []
        return self._claim("endpoint=? AND state='queued'", (endpoint,), limit)

    def take_expired(self, endpoint: str, now: float) -> list[QueuedRequest]:
        return self._claim("endpoint=? AND state='queued' AND expires_at<?", (endpoint, now), 1000)

    def finish(self, key: str, outcome: str) -> None:
        self._write("UPDATE requests SET state='done', outcome=? WHERE key=?", (outcome, key))

    def requeue(self, key: str) -> None:
        self._write("UPDATE requests SET state='queued' WHERE key=?", (key,))

    def drop(self, endpoint: str) -> int:
        return self._write(
            "UPDATE requests SET state='done', outcome='dropped' "
            "WHERE endpoint=? AND state!='done'",
            (endpoint,),
        )

    def waiting_endpoints(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT endpoint FROM requests WHERE state='queued'"
            ).fetchall()
        return [r[0] for r in rows]

    def backlog(self) -> dict[str, tuple[int, float]]:
        """Per endpoint: requests queued or in flight, and the oldest one's arrival time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT endpoint, COUNT(*), MIN(received_at) FROM requests "
                "WHERE state!='done' GROUP BY endpoint"
            ).fetchall()
        return {r[0]: (int(r[1]), float(r[2])) for r in rows}

    def outcomes(self, endpoint: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, outcome FROM requests WHERE endpoint=? AND state='done'", (endpoint,)
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def remember_config(self, endpoint: str, config: Mapping[str, Any]) -> None:
        self._write(
            "INSERT OR REPLACE INTO configs (endpoint, config) VALUES (?, ?)",
            (endpoint, json.dumps(config)),
        )

    def config(self, endpoint: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT config FROM configs WHERE endpoint=?", (endpoint,)
            ).fetchone()
        return json.loads(row[0]) if row else None


# ---- metrics -----------------------------------------------------------------------------
@dataclass
class _VariantCounters:
    processed: int = 0
    failures: int = 0
    expired: int = 0
    download_failures: int = 0
    upload_failures: int = 0
    notification_failures: int = 0
    time_in_backlog_ms: LatencyWindow = field(default_factory=LatencyWindow)
    total_processing_ms: LatencyWindow = field(default_factory=LatencyWindow)
    model_latency_us: LatencyWindow = field(default_factory=LatencyWindow)


_COUNTERS = (
    ("processed", "InvocationsProcesssed"),
    ("failures", "InvocationFailures"),
    ("expired", "ExpiredRequests"),
    ("download_failures", "RequestDownloadFailures"),
    ("upload_failures", "ResponseUploadFailures"),
    ("notification_failures", "NotificationFailures"),
)
_WINDOWS = (
    ("time_in_backlog_ms", "TimeInBacklog", "milliseconds"),
    ("total_processing_ms", "TotalProcessingTime", "milliseconds"),
    ("model_latency_us", "ModelLatency", "microseconds"),
)


# ---- outcomes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Outcome:
    ok: bool
    body: bytes
    content_type: str
    reason: str = ""
    kind: str = "success"  # success | failed | expired


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
        self._clients = clients or _boto3_client
        self._client_cache: dict[str, Any] = {}
        self._client_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="smlocal-async")
        self._configs: weakref.WeakKeyDictionary[Endpoint, dict[str, Any] | None] = (
            weakref.WeakKeyDictionary()
        )
        self._in_flight: dict[str, int] = {}  # container id -> requests on it
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self.counters: dict[tuple[str, str], _VariantCounters] = {}

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
        test = {
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "TestNotification",
        }
        for topic in {notification.get("SuccessTopic"), notification.get("ErrorTopic")} - {None}:
            self._pool.submit(self._publish_quietly, str(topic), test)

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

    def _counters(self, endpoint: str, variant: str) -> _VariantCounters:
        return self.counters.setdefault((endpoint, variant), _VariantCounters())

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
        strings = {k: v for k, v in headers.items() if k not in _INT_HEADERS.values()}
        forwarded = rules.forwarded_headers(strings)
        ints = {member: _int_header(rules_of_ints(), member, headers) for member in _INT_HEADERS}
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
        extension = forwarded.pop(_PATH_HEADERS["S3OutputPathExtension"], "")
        filename = forwarded.pop(_PATH_HEADERS["Filename"], "")
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
            output_location=_join(output_path, extension, filename or key + OUTPUT_SUFFIX),
            failure_location=_join(failure_path, extension, stem + FAILURE_SUFFIX),
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
            self._spawn(request, None, None)
        endpoint = self.endpoints.get(name)
        if endpoint is None or endpoint.status != EndpointStatus.IN_SERVICE:
            return
        config = self.config_of(endpoint) or {}
        cap = int(
            (config.get("ClientConfig") or {}).get("MaxConcurrentInvocationsPerInstance")
            or DEFAULT_MAX_CONCURRENT_PER_INSTANCE
        )
        slots: list[Instance] = []
        for variant in endpoint.spec.variants:
            if variant.weight <= 0:
                continue
            for instance in endpoint.healthy(variant.name):
                free = cap - self._in_flight.get(instance.container.id, 0)
                slots += [instance] * max(0, free)
        # Fill the least busy instances first.
        slots.sort(key=lambda i: self._in_flight.get(i.container.id, 0))
        for request, instance in zip(self.queue.take(name, len(slots)), slots, strict=False):
            self._spawn(request, endpoint, instance)

    def _spawn(
        self, request: QueuedRequest, endpoint: Endpoint | None, instance: Instance | None
    ) -> None:
        if instance is not None:
            cid = instance.container.id
            self._in_flight[cid] = self._in_flight.get(cid, 0) + 1
        task = asyncio.create_task(self._process(request, endpoint, instance))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(
        self, request: QueuedRequest, endpoint: Endpoint | None, instance: Instance | None
    ) -> None:
        started = _now()
        variant = instance.variant if instance else "-"
        counters = self._counters(request.endpoint, variant)
        try:
            if request.recovered:
                done = await self._run_sync(self._existing_outcome, request)
                if done is not None:
                    self.queue.finish(request.key, done)
                    return
            if endpoint is None or instance is None:
                counters.expired += 1
                outcome = _Outcome(
                    False,
                    b"",
                    "text/plain",
                    f"Request expired: it waited in the queue longer than its "
                    f"RequestTTLSeconds ({request.ttl_s} s).",
                    "expired",
                )
            else:
                counters.time_in_backlog_ms.add(int((started - request.received_at) * 1000))
                outcome = await self._invoke(request, endpoint, instance, counters)
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
            if instance is not None:
                self._in_flight[instance.container.id] -= 1
            self._wake.set()

    async def _run_sync(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def _invoke(
        self,
        request: QueuedRequest,
        endpoint: Endpoint,
        instance: Instance,
        counters: _VariantCounters,
    ) -> _Outcome:
        try:
            body = await self._run_sync(self._download, request.input_location)
        except Exception as error:
            counters.download_failures += 1
            counters.failures += 1
            return _Outcome(
                False,
                b"",
                "text/plain",
                f"ClientError: Failed to download the input from {request.input_location}: {error}",
            )
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
            return _Outcome(
                False,
                b"",
                "text/plain",
                f"ClientError: Invocation timed out while waiting for a response from the model "
                f"container (InvocationTimeoutSeconds {request.timeout_s}).",
            )
        except (aiohttp.ClientError, ConnectionError) as error:
            counters.failures += 1
            return _Outcome(
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
            return _Outcome(
                False,
                payload,
                content_type,
                f"ClientError: Received {kind} error ({status}) from model. See the smlocal log "
                f"of endpoint {request.endpoint} (`smlocal logs {request.endpoint}`) for more "
                "information.",
            )
        counters.processed += 1
        return _Outcome(True, payload, content_type)

    async def _deliver(
        self, request: QueuedRequest, outcome: _Outcome, counters: _VariantCounters
    ) -> None:
        location = request.output_location if outcome.ok else request.failure_location
        body = outcome.body if outcome.body else outcome.reason.encode()
        try:
            await self._run_sync(self._upload, location, body, outcome.content_type)
        except Exception as error:
            counters.upload_failures += 1
            log.error("async request %s: cannot write %s: %s", request.inference_id, location,
                      error)  # fmt: skip
            self.queue.finish(request.key, "undeliverable")
            return
        self.queue.finish(request.key, "output" if outcome.ok else outcome.kind)
        message = _notification(request, outcome)
        notification = (request.config.get("OutputConfig") or {}).get("NotificationConfig") or {}
        topic = notification.get("SuccessTopic" if outcome.ok else "ErrorTopic")
        include = notification.get("IncludeInferenceResponseIn") or []
        wanted = "SUCCESS_NOTIFICATION_TOPIC" if outcome.ok else "ERROR_NOTIFICATION_TOPIC"
        if wanted in include and outcome.body and len(outcome.body) <= NOTIFICATION_BODY_LIMIT:
            try:
                message[RESPONSE_BODY_FIELD] = {
                    "content": outcome.body.decode(),
                    "encoding": "UTF8",
                }
            except UnicodeDecodeError:
                message[RESPONSE_BODY_FIELD] = {
                    "content": base64.b64encode(outcome.body).decode(),
                    "encoding": "BASE64",
                }
        if topic:
            try:
                await self._run_sync(self._publish, str(topic), message)
            except Exception as error:
                counters.notification_failures += 1
                log.error("async request %s: cannot notify %s: %s", request.inference_id, topic,
                          error)  # fmt: skip

    # ---- AWS I/O (in the worker threads) -----------------------------------------------
    def _client(self, service: str) -> Any:
        with self._client_lock:
            if service not in self._client_cache:
                self._client_cache[service] = self._clients(service)
            return self._client_cache[service]

    def _download(self, location: str) -> bytes:
        bucket, key = split_s3(location)
        return bytes(self._client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())

    def _upload(self, location: str, body: bytes, content_type: str) -> None:
        bucket, key = split_s3(location)
        self._client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def _exists(self, location: str) -> bool:
        bucket, key = split_s3(location)
        try:
            self._client("s3").head_object(Bucket=bucket, Key=key)
        except Exception as error:
            code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _existing_outcome(self, request: QueuedRequest) -> str | None:
        if self._exists(request.output_location):
            return "output"
        if self._exists(request.failure_location):
            return "failed"
        return None

    def _publish(self, topic: str, message: Mapping[str, Any]) -> None:
        self._client("sns").publish(TopicArn=topic, Message=json.dumps(message))

    def _publish_quietly(self, topic: str, message: Mapping[str, Any]) -> None:
        try:
            self._publish(topic, message)
        except Exception as error:
            log.warning("cannot send the test notification to %s: %s", topic, error)

    # ---- metrics -----------------------------------------------------------------------
    def prometheus(self) -> str:
        now = _now()
        backlog = self.queue.backlog()
        names = sorted(
            set(backlog)
            | {n for n, e in self.endpoints.items() if self._configs.get(e) is not None}
        )
        lines: list[str] = []
        if not names and not self.counters:
            return ""
        per_endpoint = (
            ("approximate_backlog_size", "ApproximateBacklogSize"),
            ("approximate_backlog_size_per_instance", "ApproximateBacklogSizePerInstance"),
            ("approximate_age_of_oldest_request_seconds", "ApproximateAgeOfOldestRequest"),
            ("has_backlog_without_capacity", "HasBacklogWithoutCapacity"),
        )
        values: dict[str, list[tuple[str, float]]] = {m: [] for m, _ in per_endpoint}
        for name in names:
            size, oldest = backlog.get(name, (0, now))
            endpoint = self.endpoints.get(name)
            instances = 0
            if endpoint is not None and endpoint.status == EndpointStatus.IN_SERVICE:
                instances = sum(len(endpoint.healthy(v.name)) for v in endpoint.spec.variants)
            values["approximate_backlog_size"].append((name, size))
            values["approximate_backlog_size_per_instance"].append(
                (name, size / instances if instances else float(size))
            )
            values["approximate_age_of_oldest_request_seconds"].append(
                (name, max(0.0, now - oldest) if size else 0.0)
            )
            values["has_backlog_without_capacity"].append(
                (name, 1.0 if size and not instances else 0.0)
            )
        for metric, aws_name in per_endpoint:
            full = f"smlocal_async_{metric}"
            lines += [f"# HELP {full} {aws_name}", f"# TYPE {full} gauge"]
            for name, value in values[metric]:
                lines.append(f'{full}{{endpoint="{name}"}} {value:g}')
        for attr, aws_name in _COUNTERS:
            full = f"smlocal_async_{aws_name}_total"
            lines += [f"# HELP {full} {aws_name}", f"# TYPE {full} counter"]
            for (name, variant), counters in sorted(self.counters.items()):
                labels = f'endpoint="{name}",variant="{variant}"'
                lines.append(f"{full}{{{labels}}} {getattr(counters, attr)}")
        for attr, aws_name, unit in _WINDOWS:
            full = f"smlocal_async_{aws_name}_{unit}"
            lines += [f"# HELP {full} {aws_name} in {unit}", f"# TYPE {full} summary"]
            for (name, variant), counters in sorted(self.counters.items()):
                window: LatencyWindow = getattr(counters, attr)
                labels = f'endpoint="{name}",variant="{variant}"'
                for q in (0.5, 0.9, 0.99):
                    lines.append(f'{full}{{{labels},quantile="{q}"}} {window.quantile(q):.0f}')
                lines.append(f"{full}_sum{{{labels}}} {window.total_us}")
                lines.append(f"{full}_count{{{labels}}} {window.count}")
        return "\n".join(lines) + "\n"


def _notification(request: QueuedRequest, outcome: _Outcome) -> dict[str, Any]:
    """AWS's InferenceResult message (reference §C.3)."""
    message: dict[str, Any] = {
        "awsRegion": REGION,
        "eventTime": _iso(_now()),
        "receivedTime": _iso(request.received_at),
        "invocationStatus": "Completed" if outcome.ok else "Failed",
        "requestParameters": {
            "contentType": request.content_type,
            "endpointName": request.endpoint,
            "inputLocation": request.input_location,
        },
    }
    if outcome.ok:
        message["responseParameters"] = {
            "contentType": outcome.content_type,
            "outputLocation": request.output_location,
        }
    else:
        message["failureReason"] = outcome.reason
        message["failureLocation"] = request.failure_location
    message.update(
        inferenceId=request.inference_id,
        eventVersion="1.0",
        eventSource="aws:sagemaker",
        eventName="InferenceResult",
    )
    return message


def _boto3_client(service: str) -> Any:
    import importlib

    from botocore.config import Config

    boto3: Any = importlib.import_module("boto3")
    # A fresh session, so the service's environment (AWS_ENDPOINT_URL_S3 ...) counts.
    return boto3.session.Session().client(service, config=Config(max_pool_connections=32))


@functools.cache
def rules_of_ints() -> dict[str, tuple[int, int]]:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpointAsync").input_shape
    assert shape is not None
    return {m: (int(shape.members[m].metadata["min"]), int(shape.members[m].metadata["max"]))
            for m in _INT_HEADERS}  # fmt: skip


def _int_header(
    limits: Mapping[str, tuple[int, int]], member: str, headers: Mapping[str, str]
) -> int | None:
    raw = headers.get(_INT_HEADERS[member])
    if raw is None:
        return None
    field_name = member[0].lower() + member[1:]
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(
            f"1 validation error detected: Value '{raw}' at '{field_name}' failed to satisfy "
            "constraint: Member must be an integer"
        ) from None
    low, high = limits[member]
    if value < low:
        rule = f"Member must have value greater than or equal to {low}"
    elif value > high:
        rule = f"Member must have value less than or equal to {high}"
    else:
        return value
    raise validation_error(
        f"1 validation error detected: Value '{value}' at '{field_name}' failed to satisfy "
        f"constraint: {rule}"
    )


# ---- the runtime API's async routes ------------------------------------------------------
async def _send(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class AsyncRouting:
    """In front of the runtime API: InvokeEndpointAsync, and InvokeEndpoint refused on an async
    endpoint; every other request goes to ``runtime`` untouched."""

    def __init__(self, runtime: Any, service: AsyncInference) -> None:
        self.runtime = runtime
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] == "POST" and path.startswith("/endpoints/"):
            name, _, route = path[len("/endpoints/") :].partition("/")
            if route == _ASYNC_SUFFIX[1:]:
                await self._invoke_async(scope, receive, send, name)
                return
            if route in ("invocations", "invocations-response-stream"):
                endpoint = self.service.endpoints.get(name)
                if endpoint is not None and self.service.config_of(endpoint) is not None:
                    error = validation_error(
                        f"Endpoint {name} of account {ACCOUNT_ID} is an asynchronous inference "
                        "endpoint: call InvokeEndpointAsync."
                    )
                    await _send(send, error.status, error.headers(), error.body())
                    return
        if scope["type"] == "http" and scope["method"] == "GET" and path == "/metrics":
            await self._metrics(scope, receive, send)
            return
        await self.runtime(scope, receive, send)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The runtime's /metrics text with the async metrics appended."""
        parts: list[bytes] = []
        start: dict[str, Any] = {}

        async def collect(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                parts.append(message.get("body", b""))

        await self.runtime(scope, receive, collect)
        body = b"".join(parts) + self.service.prometheus().encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200),
                    "headers": headers})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def _invoke_async(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        request_id = str(uuid.uuid4())
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await _read_all(receive, NOTIFICATION_BODY_LIMIT, request_id)
            endpoint: Endpoint = self.runtime.lookup(name)
            request = self.service.submit(endpoint, headers, body)
        except AwsError as error:
            await _send(send, error.status, error.headers(request_id), error.body())
            return
        answer = {
            "content-type": "application/json",
            "x-amzn-requestid": request_id,
            "x-amzn-sagemaker-outputlocation": request.output_location,
            "x-amzn-sagemaker-failurelocation": request.failure_location,
        }
        await _send(send, 202, answer, json.dumps({"InferenceId": request.inference_id}).encode())


async def _read_all(receive: Receive, limit: int, request_id: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise validation_error(f"Request {request_id} has oversize body.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
