"""``smlocal serve IMAGE``: a convenience over the local service, as a user would script it.

:func:`service_for` finds this SMLOCAL_HOME's running service, or starts one for the
purpose: detached (``serve --detach``; it keeps running, ``smlocal server stop`` ends it), or in
this process for a foreground serve (it ends with the serve). :func:`serve_attached` deploys
an endpoint on it, reports status changes, streams the endpoint's container log until Ctrl-C
(or the endpoint is deleted elsewhere), and then deletes what it made. :class:`LogTail`
follows the log file the service appends each endpoint's container output to; ``smlocal logs
--follow`` uses it too. Lines are handed on a batch per 0.1 s poll (to
:class:`BatchedServeEvents` as one list), so showing them costs per poll, not per line.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import botocore.exceptions

from smlocal.emulator.errors import ConfigError
from smlocal.emulator.log_files import FLUSH_AFTER_S
from smlocal.emulator.service.client import (
    delete_serve_resources,
    deploy,
    describe_or_none,
    sagemaker_client,
    undeploy,
)
from smlocal.emulator.spec import EndpointSpec
from smlocal.emulator.state import StateDir, process_identity

if TYPE_CHECKING:
    from smlocal.emulator.service.process import ServiceRecord

# The service stopped answering: a SIGTERM/SIGKILL of it, not of this serve.
_GONE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
)

__all__ = [
    "BatchedServeEvents",
    "LogTail",
    "ServeOutcome",
    "ServiceAt",
    "ServiceSettings",
    "check_images",
    "serve_attached",
    "service_for",
]

_POLL_S = 0.1
_CHECK_EVERY_S = 0.5


@dataclass(frozen=True)
class ServiceSettings:
    """How a service that serve starts runs (a running service keeps its own)."""

    host: str = "127.0.0.1"
    port: int = 8080
    ping_interval_s: float = 5.0
    invocation_timeout_s: float = 60.0


@dataclass(frozen=True)
class ServiceAt:
    url: str
    # "running" (found), "detached" (started in the background) or "here" (in this process)
    how: str


@contextlib.contextmanager
def service_for(state: StateDir, settings: ServiceSettings, *, detach: bool) -> Iterator[ServiceAt]:
    """This home's service: the running one, or one started for the purpose."""
    from smlocal.emulator.service.process import read_service_record, start_detached_service

    running = read_service_record(state)
    if running is not None:
        yield ServiceAt(running.url, "running")
        return
    if detach:
        try:
            record = start_detached_service(
                state,
                settings.host,
                settings.port,
                ping_interval_s=settings.ping_interval_s,
                invocation_timeout_s=settings.invocation_timeout_s,
            )
        except ConfigError:
            # Another serve (parallel CI jobs) may have started this home's service just now.
            running = _running_soon(state)
            if running is None:
                raise
            yield ServiceAt(running.url, "running")
            return
        yield ServiceAt(record.url, "detached")
        return
    from smlocal.emulator.docker_backend import DockerBackend
    from smlocal.emulator.endpoint import MonitorSettings
    from smlocal.emulator.service.background import service_in_background

    backend = DockerBackend()
    monitor = MonitorSettings(
        ping_interval_s=settings.ping_interval_s,
        host_cpus=backend.host_cpus(),
        host_ip="127.0.0.1",
    )
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(
                service_in_background(
                    backend,
                    state=state,
                    settings=monitor,
                    host=settings.host,
                    port=settings.port,
                    invocation_timeout_s=settings.invocation_timeout_s,
                )
            )
        except ConfigError:
            running = _running_soon(state)  # started by another command meanwhile?
            if running is None:
                raise
            yield ServiceAt(running.url, "running")
            return
        yield ServiceAt(url, "here")


def _running_soon(state: StateDir, timeout_s: float = 10.0) -> ServiceRecord | None:
    """This home's service if one comes up within ``timeout_s`` (one that another command is
    starting at this moment)."""
    from smlocal.emulator.service.process import read_service_record

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = read_service_record(state)
        if record is not None:
            return record
        time.sleep(0.1)
    return None


def check_images(spec: EndpointSpec) -> None:
    """A local image that is not in the engine is a usage error now, not a Failed endpoint
    later. ECR URIs are the service's to resolve (local copy, mirror, pull)."""
    from smlocal.emulator.docker_backend import DockerBackend

    backend = DockerBackend()
    for variant in spec.variants:
        if ".dkr.ecr." not in variant.image:
            backend.image_info(variant.image)


class LogTail:
    """The lines appended to ``path`` since ``offset`` (partial lines wait for their end)."""

    def __init__(self, path: Path, offset: int | None = None) -> None:
        self.path = path
        self.offset = path.stat().st_size if offset is None and path.exists() else offset or 0
        self._partial = b""

    def read(self) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines]

    def follow(self, emit: Callable[[list[str]], None], keep_going: Callable[[], bool]) -> None:
        """Emit new lines, a batch per poll, until ``keep_going()`` (asked every half
        second) says no."""
        checked = time.monotonic()
        while True:
            if lines := self.read():
                emit(lines)
            if time.monotonic() - checked >= _CHECK_EVERY_S:
                checked = time.monotonic()
                if not keep_going():
                    _settle()
                    if lines := self.read():
                        emit(lines)
                    return
            time.sleep(_POLL_S)


def _settle() -> None:
    """Let the service write out what it still buffers (its log files flush in batches),
    so a last read gets the container's last lines."""
    time.sleep(2 * FLUSH_AFTER_S)


class ServeEvents(Protocol):
    def status(self, endpoint: str, status: str, detail: str) -> None: ...

    def container_log(self, line: str) -> None: ...


class BatchedServeEvents(ServeEvents, Protocol):
    """Events that take the lines of a poll at once (one terminal write for all of them)."""

    def container_logs(self, lines: list[str]) -> None: ...


def _show(events: ServeEvents, lines: list[str]) -> None:
    if not lines:
        return
    batched: Callable[[list[str]], None] | None = getattr(events, "container_logs", None)
    if batched is not None:
        batched(lines)
        return
    for line in lines:
        events.container_log(line)


@dataclass(frozen=True)
class ServeOutcome:
    # "Failed", "Interrupted" (Ctrl-C before InService), "Stopped" (Ctrl-C once InService),
    # "Deleted" (by someone else: `smlocal stop`, DeleteEndpoint) or "ServiceGone" (the
    # service stopped under it)
    status: str
    failure_reason: str = ""


def serve_attached(
    url: str, spec: EndpointSpec, events: ServeEvents, state: StateDir
) -> ServeOutcome:
    """Deploy ``spec`` on the service at ``url`` and stay attached: statuses and container
    log lines go to ``events`` until Ctrl-C, a failure, or a deletion elsewhere; whatever
    this call made is deleted before it returns (a second Ctrl-C abandons the wait).

    The endpoint carries this process's identity (``ATTACHED_TAG``): should this process die
    without deleting it (SIGKILL) and the service restart, the service deletes it rather than
    bring back an endpoint nobody serves any more."""
    client = sagemaker_client(url)
    tail = LogTail(state.log_file(spec.name))
    made = deploy(client, spec, attached_to=process_identity(os.getpid()))
    outcome = _follow(client, spec, events, tail)
    if outcome.status == "ServiceGone":
        return outcome
    if outcome.status != "Deleted":
        events.status(spec.name, "Deleting", "")
    try:
        undeploy(client, spec.name)
        # Also when the endpoint was deleted or updated elsewhere: serve's own config and
        # models (by their tag) go with it.
        delete_serve_resources(client, spec.name, made.config["EndpointConfigName"])
    except _GONE:
        return ServeOutcome("ServiceGone")
    _settle()
    _show(events, tail.read())
    return outcome


def _follow(client: object, spec: EndpointSpec, events: ServeEvents, tail: LogTail) -> ServeOutcome:
    """Show the log every poll; ask the service for the status every poll until InService,
    then every half second (each DescribeEndpoint costs the service more than a poll)."""
    seen = ""
    described = 0.0
    try:
        while True:
            _show(events, tail.read())
            if seen == "InService" and time.monotonic() - described < _CHECK_EVERY_S:
                time.sleep(_POLL_S)
                continue
            described = time.monotonic()
            answer = describe_or_none(client, spec.name)
            if answer is None:
                return ServeOutcome("Deleted")
            status = answer["EndpointStatus"]
            if status != seen:
                events.status(spec.name, status, "")
                seen = status
            if status == "Failed":
                return ServeOutcome("Failed", str(answer.get("FailureReason", "")))
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        return ServeOutcome("Stopped" if seen == "InService" else "Interrupted")
    except _GONE:
        return ServeOutcome("ServiceGone")
