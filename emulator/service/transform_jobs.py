"""Batch transform on the local service: Create/Describe/Stop/ListTransformJobs (reference §F).

One method per control-plane operation, taking the validated input members and returning the
output members, as :class:`~smlocal.emulator.service.hosting.HostingService` does for the
hosting ones. A job's record (the DescribeTransformJob output) lives in the :class:`Store`
(kind ``transform-job``, so ListTransformJobs pages, filters and sorts like the other lists);
the run itself is :class:`~smlocal.emulator.service.transform_job.TransformRun`, a task per job.

Lifecycle: CreateTransformJob checks the model, the rules (:mod:`.transform_rules`) and that
the input names objects (AWS's "No S3 objects found" otherwise), answers at once with the job
``InProgress``, and runs it in the background: ``Completed``, or ``Failed`` with a
FailureReason. StopTransformJob: ``Stopping``, the containers stop and go, then ``Stopped``.

Documented choices (AWS's wordings unconfirmed): an unknown job is ``ValidationException``
``Could not find requested job with name NAME`` (what boto3's waiter treats as failure); a
name taken is ``ResourceInUse`` in the words AWS uses for training jobs; stopping a job that
is no longer InProgress is ``ValidationException`` ``The request was rejected because the
transform job is in status S.``. A job running when the service stops or is killed is
``Failed`` at the next start (it is not resumed): its containers carry the service's label
and are swept with the rest. DescribeTransformJob carries one member botocore does not model,
``SmlocalProgress`` (objects and records done), which boto3 drops and ``smlocal transform``
reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.backend import ContainerBackend
from smlocal.emulator.endpoint import LogSink, MonitorSettings
from smlocal.emulator.errors import ConfigError
from smlocal.emulator.service.catalog import Catalog, Params, public
from smlocal.emulator.service.resources import arn
from smlocal.emulator.service.store import Kind, Store
from smlocal.emulator.service.transform_input import NoInput, list_inputs
from smlocal.emulator.service.transform_job import JobFailed, TransformRun
from smlocal.emulator.service.transform_rules import check_job, no_input
from smlocal.emulator.service.transform_settings import Progress, job_spec

__all__ = ["PROGRESS_MEMBER", "TransformJobs"]

log = logging.getLogger(__name__)

PROGRESS_MEMBER = "SmlocalProgress"
_PROGRESS = "_smlocal_progress"
_SUMMARY = (
    "TransformJobName",
    "TransformJobArn",
    "CreationTime",
    "TransformEndTime",
    "LastModifiedTime",
    "TransformJobStatus",
    "FailureReason",
)
_INTERRUPTED = (
    "smlocal was stopped while this job ran; it is not resumed (run it again under a new name)"
)


def _default_s3() -> Any:
    import importlib

    from botocore.config import Config

    boto3: Any = importlib.import_module("boto3")
    # A fresh session, so the service's environment (AWS_ENDPOINT_URL_S3 ...) counts.
    return boto3.session.Session().client("s3", config=Config(max_pool_connections=16))


class TransformJobs(Catalog):
    def __init__(
        self,
        store: Store,
        backend: ContainerBackend,
        *,
        cache_dir: Path,
        work_dir: Path,
        log_dir: Path,
        settings: MonitorSettings,
        session_id: str,
        resolve_image: Callable[[str], str | None],
        s3_client: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(store)
        self.backend = backend
        self.cache_dir = cache_dir
        self.work_dir = work_dir
        self.log_dir = log_dir
        self.settings = settings
        self.session_id = session_id
        self._resolve_image = resolve_image
        self._make_s3 = s3_client or _default_s3
        self._s3: Any = None
        self._s3_lock = threading.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._progress: dict[str, Progress] = {}
        self._logs: dict[str, IO[str]] = {}
        self._ended_logs: set[str] = set()  # jobs whose log is closed for good
        self.closing = False

    def s3(self) -> Any:
        with self._s3_lock:
            if self._s3 is None:
                self._s3 = self._make_s3()
            return self._s3

    # ---- operations ----------------------------------------------------------------------
    async def create_transform_job(self, p: Params) -> Params:
        if self.closing:
            raise AwsError("ServiceUnavailable", "smlocal is stopping; try again once it runs.")
        name = p["TransformJobName"]
        job_arn = arn("transform-job", name)
        if self.store.get(Kind.TRANSFORM_JOB, name) is not None:
            raise AwsError(
                "ResourceInUse",
                "Transform job names must be unique within an AWS account and region, and a "
                f"transform job with this name already exists ({job_arn})",
            )
        model = self._require(Kind.MODEL, "model", p["ModelName"])
        check_job(p)
        try:
            spec = await asyncio.to_thread(job_spec, p, model, self._resolve_image)
        except (ConfigError, AwsError) as error:
            raise AwsError("ValidationException", getattr(error, "message", str(error))) from None
        source = p["TransformInput"]["DataSource"]["S3DataSource"]
        try:
            await asyncio.to_thread(list_inputs, source["S3DataType"], source["S3Uri"], self.s3)
        except NoInput:
            raise no_input(source["S3Uri"], model.get("ExecutionRoleArn")) from None
        except ValueError as error:
            raise AwsError("ValidationException", str(error)) from None
        except Exception as error:  # S3 refused (no such bucket, access denied, ...)
            log.info("transform job %s: cannot list %s: %s", name, source["S3Uri"], error)
            raise no_input(source["S3Uri"], model.get("ExecutionRoleArn")) from None
        now = time.time()
        record = {
            **{k: v for k, v in p.items() if k != "Tags"},
            "TransformJobArn": job_arn,
            "TransformJobStatus": "InProgress",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        self.store.insert(Kind.TRANSFORM_JOB, name, record, status="InProgress")
        self._tag(job_arn, p)
        progress = self._progress[name] = Progress()
        run = TransformRun(
            record,
            spec,
            backend=self.backend,
            cache_dir=self.cache_dir,
            work_dir=self.work_dir / name.lower(),
            monitor=self.settings,
            session_id=self.session_id,
            log_sink=self._log_sink(name),
            s3=self.s3,
            progress=progress,
            on_started=lambda: self._update(name, TransformStartTime=time.time()),
        )
        task = asyncio.create_task(self._run(name, run), name=f"transform-{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda _: self._tasks.pop(name, None))
        return {"TransformJobArn": job_arn}

    async def describe_transform_job(self, p: Params) -> Params:
        record = self._job(p["TransformJobName"])
        live = self._progress.get(record["TransformJobName"])
        answer = public(record)
        progress = live.as_dict() if live is not None else record.get(_PROGRESS)
        if progress is not None:
            answer[PROGRESS_MEMBER] = progress
        return answer

    async def stop_transform_job(self, p: Params) -> Params:
        record = self._job(p["TransformJobName"])
        name, status = record["TransformJobName"], record["TransformJobStatus"]
        if status == "Stopping":
            return {}
        if status != "InProgress":
            raise AwsError(
                "ValidationException",
                f"The request was rejected because the transform job is in status {status}.",
            )
        self._update(name, TransformJobStatus="Stopping")
        task = self._tasks.get(name)
        if task is None:  # nothing runs it (any more): it has stopped
            self._update(name, TransformJobStatus="Stopped", TransformEndTime=time.time())
        else:
            task.cancel()
        return {}

    async def list_transform_jobs(self, p: Params) -> Params:
        return self._list(Kind.TRANSFORM_JOB, p, "TransformJobSummaries", _SUMMARY)

    # ---- the service's own life ----------------------------------------------------------
    async def recover(self) -> None:
        """After a restart: a job that was running is Failed (its containers were swept with
        the service's others), one that was stopping is Stopped."""
        for record in self.store.all(Kind.TRANSFORM_JOB):
            name, status = record["TransformJobName"], record["TransformJobStatus"]
            if status == "InProgress":
                log.warning("transform job %s was running when smlocal stopped: Failed", name)
                self._update(
                    name,
                    TransformJobStatus="Failed",
                    FailureReason=_INTERRUPTED,
                    TransformEndTime=time.time(),
                )
            elif status == "Stopping":
                self._update(name, TransformJobStatus="Stopped", TransformEndTime=time.time())

    async def close(self) -> None:
        """Stop every running job (its containers removed); each ends Failed, as a restart
        would find it."""
        self.closing = True
        tasks = list(self._tasks.items())
        for name, task in tasks:
            record = self.store.get(Kind.TRANSFORM_JOB, name) or {}
            if record.get("TransformJobStatus") == "InProgress":
                self._update(name, _smlocal_closing=True)
            task.cancel()
        await asyncio.gather(*(task for _, task in tasks), return_exceptions=True)
        for handle in self._logs.values():
            handle.close()
        self._logs.clear()

    # ---- the run -------------------------------------------------------------------------
    async def _run(self, name: str, run: TransformRun) -> None:
        changes: dict[str, Any]
        try:
            await run.run()
            changes = {"TransformJobStatus": "Completed"}
        except JobFailed as failure:
            changes = {"TransformJobStatus": "Failed", "FailureReason": str(failure)}
        except asyncio.CancelledError:
            record = self.store.get(Kind.TRANSFORM_JOB, name) or {}
            if record.get("_smlocal_closing"):
                changes = {"TransformJobStatus": "Failed", "FailureReason": _INTERRUPTED}
            else:
                changes = {"TransformJobStatus": "Stopped"}
        except Exception as error:
            log.exception("transform job %s: unexpected error", name)
            changes = {
                "TransformJobStatus": "Failed",
                "FailureReason": f"InternalServerError: smlocal failed on this job: {error}",
            }
        progress = self._progress.pop(name, None)
        if progress is not None:
            changes[_PROGRESS] = progress.as_dict()
        ended = run.finished_at or time.time()
        self._update(name, TransformEndTime=ended, _smlocal_closing=None, **changes)
        log.info("transform job %s: %s", name, changes["TransformJobStatus"])
        self._close_log(name)  # its containers are gone: one open file per job would pile up

    def _close_log(self, name: str) -> None:
        self._ended_logs.add(name)
        handle = self._logs.pop(name, None)
        if handle is not None:
            handle.close()

    def _log_sink(self, name: str) -> LogSink:
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.log_dir / f"{name.lower()}.log"
        lock = threading.Lock()

        def write(source: str, line: str) -> None:
            with lock:
                if name in self._ended_logs:
                    return  # a late line of an ended job's container: its log is closed
                handle = self._logs.get(name)
                if handle is None:
                    handle = self._logs[name] = path.open("a", buffering=1, encoding="utf-8")
                    path.chmod(0o600)
                with contextlib.suppress(ValueError):  # closed by the job's end meanwhile
                    handle.write(f"{source} | {line}\n")

        return write

    # ---- records -------------------------------------------------------------------------
    def _job(self, name: str) -> dict[str, Any]:
        record = self.store.get(Kind.TRANSFORM_JOB, name)
        if record is None:
            raise AwsError("ValidationException", f"Could not find requested job with name {name}")
        return record

    def _update(self, name: str, **changes: Any) -> None:
        record = self.store.get(Kind.TRANSFORM_JOB, name)
        if record is None:
            return
        record.update(changes, LastModifiedTime=time.time())
        record = {k: v for k, v in record.items() if v is not None}
        self.store.replace(Kind.TRANSFORM_JOB, name, record, status=record["TransformJobStatus"])
