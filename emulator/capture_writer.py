"""The data-capture writer: captured requests buffered and written off the request path.

The request path only calls :meth:`CaptureWriter.offer` (a sampling draw and a deque append,
no I/O, no encoding, never an exception). One thread per endpoint fleet drains the buffer
every :data:`FLUSH_INTERVAL_S` seconds, or at once when :data:`FLUSH_RECORDS` records wait,
encodes the records (:mod:`~smlocal.emulator.capture`) and writes one JSONL file per variant
and hour of the batch: ``put_object`` through boto3 (real S3, or a moto server through
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``), or a file in a local directory, written under
a hidden temporary name and renamed, so a reader never sees half a file.

Capture never fails or slows a request: more than :data:`MAX_PENDING_BYTES` waiting (S3 too
slow) drops new records, a failed write (full disk, unreachable S3, no such bucket) drops
that batch; both with a warning in the service log and a count in ``GET /metrics``
(``smlocal_capture_dropped_total{reason=...}``). :meth:`CaptureWriter.close` (the endpoint
stopping: DeleteEndpoint, an UpdateEndpoint's old fleet, ``smlocal server stop``) writes
everything still buffered before it returns.
"""

from __future__ import annotations

import collections
import importlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from smlocal.emulator.capture import (
    CaptureSpec,
    Exchange,
    capture_key,
    hour_of,
    parse_destination,
    record_line,
)

__all__ = [
    "FLUSH_INTERVAL_S",
    "FLUSH_RECORDS",
    "MAX_PENDING_BYTES",
    "CaptureSink",
    "CaptureWriter",
    "LocalSink",
    "S3Sink",
    "StreamCapture",
    "sink_for",
]

log = logging.getLogger(__name__)

INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"
# A streamed answer is kept for capture up to InvokeEndpoint's own response limit; a longer
# one is not captured (counted as dropped, reason "too_large").
MAX_STREAM_CAPTURE_BYTES = 6 * 1024 * 1024

# AWS says delivery "can require a couple of minutes"; locally a test or a user looking at
# the folder should not wait: a file every 2 s at most per variant and hour, or sooner when
# this many records wait.
FLUSH_INTERVAL_S = 2.0
FLUSH_RECORDS = 1000
# Payloads waiting for the writer, at most (SageMaker payloads are up to 6 MiB each).
MAX_PENDING_BYTES = 64 * 1024 * 1024
# A failing destination is named in the log at most this often.
WARN_EVERY_S = 60.0
JSONL_CONTENT_TYPE = "application/jsonl"


class CaptureSink(Protocol):
    """A place capture files go; ``key`` is relative to the destination."""

    def write(self, key: str, body: bytes) -> None: ...

    def describe(self) -> str: ...


def _umask() -> int:
    """The process's umask, read without os.umask (which would set it, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


class LocalSink:
    """A local directory (smlocal's extension to ``DestinationS3Uri``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def write(self, key: str, body: bytes) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".capture-", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(body)
            # mkstemp makes it 0600; a capture file is for an analyzer (maybe another user's
            # container) to read, like any file the user's umask governs.
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)  # no half file left behind
            raise

    def describe(self) -> str:
        return str(self.root)


def _boto3_s3() -> Any:
    from botocore.config import Config

    boto3: Any = importlib.import_module("boto3")
    # A fresh session, so the service's environment counts; short timeouts and few retries,
    # so an unreachable S3 costs a batch, not the writer's whole backlog.
    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2})
    return boto3.session.Session().client("s3", config=config)


class S3Sink:
    """``s3://bucket/prefix`` through boto3 (SSE-KMS with the config's ``KmsKeyId``)."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        kms_key_id: str | None = None,
        client: Callable[[], Any] = _boto3_s3,
    ) -> None:
        self.bucket, self.prefix, self.kms_key_id = bucket, prefix, kms_key_id
        self._make_client = client
        self._client: Any = None

    def write(self, key: str, body: bytes) -> None:
        if self._client is None:
            self._client = self._make_client()
        extra: dict[str, str] = {}
        if self.kms_key_id:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        full = f"{self.prefix}/{key}" if self.prefix else key
        self._client.put_object(
            Bucket=self.bucket, Key=full, Body=body, ContentType=JSONL_CONTENT_TYPE, **extra
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def sink_for(spec: CaptureSpec, s3_client: Callable[[], Any] = _boto3_s3) -> CaptureSink:
    """The sink ``spec.destination`` names."""
    where = parse_destination(spec.destination)
    if where.bucket is None:
        return LocalSink(where.prefix)
    return S3Sink(where.bucket, where.prefix, spec.kms_key_id, s3_client)


class CaptureWriter:
    """Captured requests of one endpoint fleet, buffered and written by a thread of its own."""

    def __init__(
        self,
        spec: CaptureSpec,
        endpoint: str,
        sink: CaptureSink | None = None,
        *,
        flush_interval_s: float | None = None,
        flush_records: int = FLUSH_RECORDS,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.sink = sink if sink is not None else sink_for(spec)
        # Read here, not at import: a test may lengthen it to prove that a stop flushes.
        self.flush_interval_s = FLUSH_INTERVAL_S if flush_interval_s is None else flush_interval_s
        self.flush_records = flush_records
        self.max_pending_bytes = max_pending_bytes
        self._pending: collections.deque[Exchange] = collections.deque()
        # Each counter has one writer (the request path or the thread): no lock needed.
        self._accepted_bytes = 0
        self._drained_bytes = 0
        self.written: dict[str, int] = {}  # variant -> records written
        self.dropped: dict[str, int] = {}  # reason -> records dropped
        self.dropped_on_request: dict[str, int] = {}
        self.files = 0
        self._wake = threading.Event()
        self._closing = False
        # offer's check of _closing and its append are one step for close(): a record offered
        # while the fleet stops is written or counted as dropped, never neither.
        self._offer_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._last_warning = 0.0

    # ---- the request path ----------------------------------------------------------------
    def wants(self) -> bool:
        """This request's sampling draw (for a caller that must decide before the answer)."""
        return self.spec.active and self.spec.sampled()

    def offer(self, exchange: Exchange, *, sampled: bool = False) -> None:
        """Capture ``exchange`` if it is sampled (``sampled``: already drawn by :meth:`wants`).
        Never raises, never blocks on I/O."""
        try:
            if not sampled and not self.wants():
                return
            size = len(exchange.input_body) + len(exchange.output_body)
            with self._offer_lock:
                if self._closing:
                    self._drop_on_request("closed")
                    return
                if self._accepted_bytes - self._drained_bytes + size > self.max_pending_bytes:
                    self._drop_on_request("backlog")
                    return
                self._accepted_bytes += size
                self._pending.append(exchange)
            if self._thread is None:
                self._start()
            if len(self._pending) >= self.flush_records:
                self._wake.set()
        except Exception:  # capture must never fail a request
            log.exception("endpoint %s: capturing a request failed", self.endpoint)

    def offer_answer(
        self,
        variant: str,
        request_headers: Mapping[str, str],
        body: bytes,
        answer_type: str | None,
        answer: bytes,
        *,
        sampled: bool = False,
    ) -> None:
        """Capture one answered InvokeEndpoint (``request_headers`` in lower case, as ASGI
        gives them: the request's Content-Type and InferenceId come from there)."""
        self.offer(
            Exchange(
                variant=variant,
                at=time.time(),
                input_type=request_headers.get("content-type"),
                input_body=body,
                output_type=answer_type,
                output_body=answer,
                inference_id=request_headers.get(INFERENCE_ID_HEADER),
            ),
            sampled=sampled,
        )

    def stream(
        self, variant: str, request_headers: Mapping[str, str], body: bytes, answer_type: str
    ) -> StreamCapture | None:
        """A response stream's capture, if this request is sampled: feed it the chunks."""
        if not self.wants():
            return None
        return StreamCapture(self, variant, request_headers, body, answer_type)

    def _drop_on_request(self, reason: str) -> None:
        self.dropped_on_request[reason] = self.dropped_on_request.get(reason, 0) + 1
        self._warn(f"{reason}: records are being dropped")

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"smlocal-capture-{self.endpoint}", daemon=True
                )
                self._thread.start()

    # ---- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            closing = self._closing  # read before draining: nothing offered before is missed
            self._flush()
            if closing:
                return

    def _flush(self) -> None:
        batch: list[Exchange] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return
        self._drained_bytes += sum(len(e.input_body) + len(e.output_body) for e in batch)
        groups: dict[tuple[str, str], list[Exchange]] = {}
        for exchange in batch:
            groups.setdefault((exchange.variant, hour_of(exchange.at)), []).append(exchange)
        for (variant, _hour), records in groups.items():
            self._write(variant, records)

    def _write(self, variant: str, records: list[Exchange]) -> None:
        try:
            body = "".join(record_line(r, self.spec) + "\n" for r in records).encode()
            key = capture_key("", self.endpoint, variant, records[0].at, str(uuid.uuid4()))
            self.sink.write(key, body)
        except Exception as error:
            self.dropped["write_failed"] = self.dropped.get("write_failed", 0) + len(records)
            self._warn(
                f"cannot write {len(records)} record(s) to {self.sink.describe()} "
                f"({error.__class__.__name__}: {error}); dropped"
            )
            return
        self.files += 1
        self.written[variant] = self.written.get(variant, 0) + len(records)

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_warning < WARN_EVERY_S and self._last_warning:
            return
        self._last_warning = now
        log.warning(
            "endpoint %s: data capture %s (requests are not affected; "
            "smlocal_capture_dropped_total in /metrics counts them)",
            self.endpoint,
            what,
        )

    # ---- life ----------------------------------------------------------------------------
    def close(self) -> None:
        """Write everything buffered, then stop the thread (blocking: call off the loop)."""
        with self._offer_lock:  # no record is appended after this
            self._closing = True
        thread = self._thread
        if thread is None:
            with self._start_lock:
                self._thread = threading.current_thread()  # no thread starts after this
            self._flush()
            return
        self._wake.set()
        thread.join()

    def prometheus(self) -> str:
        labels = f'endpoint="{self.endpoint}"'
        lines = [
            "# HELP smlocal_capture_records_total captured records written (DataCaptureConfig)",
            "# TYPE smlocal_capture_records_total counter",
        ]
        for variant, count in sorted(self.written.items()):
            lines.append(f'smlocal_capture_records_total{{{labels},variant="{variant}"}} {count}')
        lines += [
            "# HELP smlocal_capture_dropped_total captured records dropped, never written",
            "# TYPE smlocal_capture_dropped_total counter",
        ]
        reasons = {"write_failed": 0, "backlog": 0, "closed": 0, "too_large": 0}
        for source in (self.dropped, self.dropped_on_request):
            for reason, count in source.items():
                reasons[reason] = reasons.get(reason, 0) + count
        for reason, count in sorted(reasons.items()):
            lines.append(f'smlocal_capture_dropped_total{{{labels},reason="{reason}"}} {count}')
        lines += [
            "# HELP smlocal_capture_files_total capture files written",
            "# TYPE smlocal_capture_files_total counter",
            f"smlocal_capture_files_total{{{labels}}} {self.files}",
        ]
        return "\n".join(lines) + "\n"


class StreamCapture:
    """The chunks of one sampled response stream, offered as one answer when it ends."""

    def __init__(
        self,
        writer: CaptureWriter,
        variant: str,
        request_headers: Mapping[str, str],
        body: bytes,
        answer_type: str,
    ) -> None:
        self.writer, self.variant, self.body, self.answer_type = writer, variant, body, answer_type
        self.headers = {k: request_headers[k] for k in ("content-type", INFERENCE_ID_HEADER)
                        if k in request_headers}  # fmt: skip
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        if self.size <= MAX_STREAM_CAPTURE_BYTES:
            self.chunks.append(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        """The stream ended normally: capture it (a broken stream is not captured)."""
        if self.size > MAX_STREAM_CAPTURE_BYTES:
            self.writer._drop_on_request("too_large")
            return
        self.writer.offer_answer(
            self.variant,
            self.headers,
            self.body,
            self.answer_type,
            b"".join(self.chunks),
            sampled=True,
        )
