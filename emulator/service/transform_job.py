"""One batch transform job, run: the requests and the output objects (reference §F.2).

Owns what happens between ``InProgress`` and ``Completed``/``Failed`` once the containers
(:mod:`.transform_settings`) are up:

* At most ``MaxConcurrentTransforms`` requests per instance are in flight, across objects;
  each gets ``InvocationsTimeoutInSeconds`` and up to ``InvocationsMaxRetries`` retries (on a
  timeout, a connection failure, 429 or 5xx; another 4xx is the record's fault: no retry).
* An object's answers are assembled in input order into a spool file and uploaded as
  ``<relative path>.out`` only once every request of the object succeeded. An object that
  fails gets no output; the other objects go on, and the job ends Failed naming the object
  and the container's answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from smlocal.emulator.artifacts import stage_models
from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.backend import ContainerBackend
from smlocal.emulator.endpoint import Instance, LogSink, MonitorSettings
from smlocal.emulator.errors import SmlocalError
from smlocal.emulator.placement import placement_warnings
from smlocal.emulator.service.transform_dataproc import DataProcessing
from smlocal.emulator.service.transform_input import (
    MB,
    InputObject,
    S3Client,
    fetch,
    list_inputs,
    pack,
    records,
    write_output,
)
from smlocal.emulator.service.transform_settings import (
    Progress,
    TransformFleet,
    batch_settings,
    offered_settings,
)
from smlocal.emulator.spec import EndpointSpec

__all__ = ["JobFailed", "TransformRun"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600
DEFAULT_RETRIES = 3
_BATCHES_PER_READ = 64
_NO_INSTANCE_POLL_S = 0.1
_MAX_REASON = 1024
_ANSWER_SNIPPET = 300


class JobFailed(Exception):
    """The job ends Failed with this FailureReason."""


class _ObjectFailed(Exception):
    pass


class TransformRun:
    def __init__(
        self,
        job: Mapping[str, Any],
        spec: EndpointSpec,
        *,
        backend: ContainerBackend,
        cache_dir: Path,
        work_dir: Path,
        monitor: MonitorSettings,
        session_id: str,
        log_sink: LogSink | None,
        s3: S3Client,
        progress: Progress,
        on_started: Callable[[], None] = lambda: None,
    ) -> None:
        self.job = job
        self.spec = spec
        self.backend = backend
        self.cache_dir = cache_dir
        self.work_dir = work_dir
        self.monitor = monitor
        self.session_id = session_id
        self.log_sink = log_sink
        self.s3 = s3
        self.progress = progress
        self.on_started = on_started
        source = job["TransformInput"]
        output = job["TransformOutput"]
        self.split = source.get("SplitType") or "None"
        self.compression = source.get("CompressionType") or "None"
        self.content_type = source.get("ContentType")
        self.accept = output.get("Accept")
        self.assemble_line = (output.get("AssembleWith") or "None") == "Line"
        self.output_path = output["S3OutputPath"]
        self.processing = DataProcessing.compile(
            job.get("DataProcessing"), self.content_type, self.accept
        )
        client = job.get("ModelClientConfig") or {}
        self.timeout_s = float(client.get("InvocationsTimeoutInSeconds") or DEFAULT_TIMEOUT_S)
        retries = client.get("InvocationsMaxRetries")
        self.retries = DEFAULT_RETRIES if retries is None else int(retries)
        self.fleet: TransformFleet | None = None
        # When the last object was written (or the job's failure was known): the job's
        # TransformEndTime, before its containers are stopped and removed.
        self.finished_at: float | None = None
        self.failures: list[tuple[str, str]] = []
        self.settings = batch_settings(job, {})
        self._slots = asyncio.Semaphore(1)

    async def run(self) -> None:
        """Run the job to its end; JobFailed(reason) when it does not complete."""
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            await self._run()
        finally:
            if self.fleet is not None:
                await asyncio.shield(self.fleet.stop())
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, self.work_dir, True))

    async def _run(self) -> None:
        variant = self.spec.variants[0]
        inspect = getattr(self.backend, "image_info", None)
        if inspect is not None:  # what this host cannot give the instance type, as for endpoints
            try:
                warnings = placement_warnings(self.spec, inspect)
            except SmlocalError as error:  # e.g. no such image
                raise JobFailed(f"ClientError: {error}") from None
            for warning in warnings:
                log.warning("transform job %s: %s", self.spec.name, warning)
        try:
            models = await stage_models({variant.name: variant.model}, self.cache_dir)
        except SmlocalError as error:
            raise JobFailed(f"ClientError: cannot stage the model: {error}") from None
        self.fleet = TransformFleet(
            self.spec,
            self.backend,
            models,
            settings=self.monitor,
            log_sink=self.log_sink,
            session_id=self.session_id,
        )
        try:
            await self.fleet.start()
        except SmlocalError as error:
            raise JobFailed(_with_logs(f"ClientError: {error}", error)) from None
        self.on_started()
        offered = await self._execution_parameters()
        self.settings = batch_settings(self.job, offered)
        log.info("transform job %s: %s (container offered %s)", self.spec.name, self.settings,
                 offered or "nothing")  # fmt: skip
        source = self.job["TransformInput"]["DataSource"]["S3DataSource"]
        try:
            objects = await asyncio.to_thread(
                list_inputs, source["S3DataType"], source["S3Uri"], self.s3
            )
        except Exception as error:
            raise JobFailed(
                f"ClientError: cannot list the input {source['S3Uri']}: {error}"
            ) from None
        self.progress.objects_total = len(objects)
        slots = self.settings.concurrency * self.spec.variants[0].instance_count
        self._slots = asyncio.Semaphore(slots)
        gate = asyncio.Semaphore(slots)

        async def one(index: int, item: InputObject) -> None:
            async with gate:
                await self._object(index, item)

        await asyncio.gather(*(one(i, item) for i, item in enumerate(objects)))
        self.finished_at = time.time()
        if self.failures:
            location, reason = self.failures[0]
            others = len(self.failures) - 1
            more = f" (and {others} other object(s))" if others else ""
            raise JobFailed(
                _cap(
                    f"ClientError: the transform of {location} failed{more}; no output was "
                    f"written for it: {reason}"
                )
            )

    async def _execution_parameters(self) -> dict[str, Any]:
        assert self.fleet is not None
        try:
            instance = await self._instance()
            async with self.fleet.http.get(
                instance.url("/execution-parameters"), timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                if response.status != 200:
                    return {}
                text = (await response.read()).decode("utf-8", errors="replace")
        except (TimeoutError, aiohttp.ClientError, _ObjectFailed):
            return {}
        offered = offered_settings(text)
        if not offered:
            log.warning("transform job %s: /execution-parameters offers nothing usable: %.200s",
                        self.spec.name, text)  # fmt: skip
        return offered

    # ---- one object ----------------------------------------------------------------------
    async def _object(self, index: int, item: InputObject) -> None:
        spool = self.work_dir / f"output-{index}"
        try:
            local = await asyncio.to_thread(fetch, item, self.work_dir / f"input-{index}", self.s3)
            count = await self._requests(local, spool)
            location = await asyncio.to_thread(
                write_output, spool, self.output_path, item.relative, self.accept, self.s3
            )
        except _ObjectFailed as failure:
            self._failed(item, str(failure))
            return
        except (OSError, ValueError) as error:
            self._failed(item, f"{error.__class__.__name__}: {error}")
            return
        except Exception as error:
            if not _is_aws(error):
                raise
            self._failed(item, f"{error.__class__.__name__}: {error}")
            return
        finally:
            for path in (spool, self.work_dir / f"input-{index}"):
                path.unlink(missing_ok=True)
        self.progress.objects_done += 1
        log.info("transform job %s: %s -> %s (%d records)", self.spec.name, item.location,
                 location, count)  # fmt: skip

    def _failed(self, item: InputObject, reason: str) -> None:
        log.error("transform job %s: %s failed: %s", self.spec.name, item.location, reason)
        self.failures.append((item.location, reason))
        self.progress.objects_failed += 1

    async def _requests(self, local: Path, spool: Path) -> int:
        multi = self.settings.strategy == "MultiRecord" and self.split != "None"
        limit = self.settings.max_payload_mb * MB or None
        prepare = self.processing.request_record
        if self.split == "None" and not self.processing.active:
            prepare = _as_is  # a whole object (binary too) goes as it is, line end and all
        batches = pack(
            ((raw, prepare(raw)) for raw in records(local, self.split, self.compression)),
            multi,
            limit,
        )
        pending: collections.deque[asyncio.Task[tuple[int, bytes]]] = collections.deque()
        written = 0
        with spool.open("wb") as out:
            try:
                while True:
                    try:
                        chunk = await asyncio.to_thread(_take, batches, _BATCHES_PER_READ)
                    except (ValueError, UnicodeDecodeError) as error:
                        raise _ObjectFailed(str(error)) from None
                    if not chunk:
                        break
                    for batch, body in chunk:
                        await self._slots.acquire()
                        task = asyncio.create_task(self._request(batch, body))
                        # Released however the request ends, cancelled before it ran included.
                        task.add_done_callback(lambda _: self._slots.release())
                        pending.append(task)
                        while pending and pending[0].done():
                            written += self._write(out, pending.popleft().result())
                while pending:
                    written += self._write(out, await pending.popleft())
            except BaseException:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                raise
            finally:
                # Cancelled while a worker thread reads it: that thread finishes its chunk.
                with contextlib.suppress(ValueError):
                    batches.close()
        return written

    def _write(self, out: Any, result: tuple[int, bytes]) -> int:
        count, data = result
        out.write(data)
        self.progress.records_done += count
        return count

    async def _request(self, batch: list[bytes], body: bytes) -> tuple[int, bytes]:
        answer, answer_type = await self._invoke(body)
        if not self.processing.active:
            if self.assemble_line and not answer.endswith(b"\n"):
                answer += b"\n"
            return len(batch), answer
        try:
            written = self.processing.output_records(batch, answer, answer_type)
        except ValueError as error:
            raise _ObjectFailed(f"{error}; the container answered: {_snippet(answer)}") from None
        end = b"\n" if self.assemble_line else b""
        return len(batch), b"".join(record + end for record in written)

    async def _invoke(self, body: bytes) -> tuple[bytes, str | None]:
        assert self.fleet is not None
        headers = {"Content-Type": self.content_type or "application/octet-stream"}
        if self.accept:
            headers["Accept"] = self.accept
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(0.2 * attempt, 2.0))
            instance = await self._instance()
            try:
                async with self.fleet.http.post(
                    instance.url("/invocations"), data=body, headers=headers, timeout=timeout
                ) as response:
                    payload = await response.read()
                    if response.status < 300:
                        return payload, response.headers.get("Content-Type")
                    last = f"the container answered {response.status}: {_snippet(payload)}"
                    if 400 <= response.status < 500 and response.status != 429:
                        break  # the record's fault: another try gets the same answer
            except TimeoutError:
                last = f"no answer within InvocationsTimeoutInSeconds ({self.timeout_s:g} s)"
            except aiohttp.ClientError as error:
                last = f"connection to the container failed: {error.__class__.__name__}"
        tries = f"after {attempt + 1} attempt(s)" if attempt else "on the first attempt"
        raise _ObjectFailed(f"{last} ({tries})")

    async def _instance(self) -> Instance:
        """A healthy instance; while none is (one failing its health checks is being
        replaced), wait for one, up to the startup window, without spending a retry."""
        assert self.fleet is not None
        deadline = time.monotonic() + self.spec.startup_timeout_s
        while True:
            try:
                return self.fleet.choose()
            except AwsError as error:
                if time.monotonic() >= deadline:
                    raise _ObjectFailed(
                        f"{error.message} (none for {self.spec.startup_timeout_s:g} s)"
                    ) from None
            await asyncio.sleep(_NO_INSTANCE_POLL_S)


def _as_is(raw: bytes) -> bytes:
    return raw


def _take(batches: Iterator[tuple[list[bytes], bytes]], count: int) -> list[Any]:
    chunk = []
    for item in batches:
        chunk.append(item)
        if len(chunk) >= count:
            break
    return chunk


def _is_aws(error: Exception) -> bool:
    module = error.__class__.__module__.split(".")[0]
    return module in ("botocore", "boto3", "s3transfer")


def _snippet(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace").strip()
    return text if len(text) <= _ANSWER_SNIPPET else text[:_ANSWER_SNIPPET] + "..."


def _with_logs(reason: str, error: SmlocalError) -> str:
    logs = str(getattr(error, "logs", "") or "").strip()
    if logs:
        tail = "\n".join(logs.splitlines()[-10:])
        reason = f"{reason}\nlast container log lines:\n{tail}"
    return _cap(reason)


def _cap(reason: str) -> str:
    if len(reason) <= _MAX_REASON:
        return reason
    return reason[: _MAX_REASON - 3] + "..."
