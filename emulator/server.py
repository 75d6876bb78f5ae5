"""The serving process behind ``smlocal serve``: one endpoint, its runtime API, until stopped.

Owns the order of things: claim the port (a clear error if taken), stage each variant's model,
open the runtime API at once (so status is visible while the endpoint is Creating), bring the
endpoint InService or Failed, publish a run record for ``ps``/``stop``/``invoke``, keep the
container log in a file, and on stop (SIGINT/SIGTERM) stop containers with SIGTERM then SIGKILL
after the grace period. Reports progress through an :class:`EventSink`; never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import uvicorn

from emulator.backend import ContainerBackend
from emulator.endpoint import Endpoint, EndpointStatus, MonitorSettings
from emulator.errors import ConfigError, EndpointFailedError
from emulator.metrics import EndpointMetrics
from emulator.runtime_api import create_app
from emulator.spec import EndpointSpec
from emulator.state import RunRecord, StateDir

if TYPE_CHECKING:
    from emulator.artifacts import StagedModel

__all__ = ["EventSink", "ServeOptions", "ServeResult", "bind_socket", "serve"]

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def container_log(self, source: str, line: str) -> None: ...

    def status(self, endpoint: str, status: str, detail: str) -> None: ...


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    settings: MonitorSettings = field(default_factory=MonitorSettings)
    state: StateDir = field(default_factory=StateDir)


@dataclass
class ServeResult:
    status: EndpointStatus
    url: str
    failure_reason: str = ""
    failure_logs: str = ""
    exit_status: int | None = None
    metrics: EndpointMetrics | None = None


def bind_socket(host: str, port: int) -> socket.socket:
    """Claim ``host:port`` now, so a busy port is a clear error before any container starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use (another endpoint?); "
                "choose another with --port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the serving process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _LogFile:
    def __init__(self, path: Path, forward: EventSink) -> None:
        self._file: IO[str] = path.open("a", buffering=1, encoding="utf-8")
        self._forward = forward
        self._lock = threading.Lock()

    def __call__(self, source: str, line: str) -> None:
        with self._lock:
            self._file.write(f"{source} | {line}\n")
        self._forward.container_log(source, line)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _stage(spec: EndpointSpec, cache: Path) -> dict[str, StagedModel | None]:
    if not any(variant.model for variant in spec.variants):
        return {variant.name: None for variant in spec.variants}
    from emulator.artifacts import stage_model

    return {
        variant.name: stage_model(variant.model, cache) if variant.model else None
        for variant in spec.variants
    }


async def serve(
    spec: EndpointSpec,
    backend: ContainerBackend,
    sink: EventSink,
    options: ServeOptions | None = None,
    *,
    sock: socket.socket | None = None,
    stop: asyncio.Event | None = None,
) -> ServeResult:
    """Serve ``spec`` until ``stop`` is set (or SIGINT/SIGTERM). Returns how it ended."""
    options = options or ServeOptions()
    sock = sock or bind_socket(options.host, options.port)
    port = sock.getsockname()[1]
    url = f"http://{options.host}:{port}"
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)

    log_path = options.state.log_file(spec.name)
    log_file = _LogFile(log_path, sink)
    record = RunRecord(
        name=spec.name,
        pid=os.getpid(),
        url=url,
        port=port,
        status=str(EndpointStatus.CREATING),
        image=", ".join(v.image for v in spec.variants),
        log_file=str(log_path),
        started_at=options.state.now(),
    )
    options.state.write(record)
    sink.status(spec.name, str(EndpointStatus.CREATING), f"staging model(s); runtime API at {url}")

    endpoints: dict[str, Endpoint] = {}
    config = uvicorn.Config(
        create_app(endpoints),
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="none",
        http="httptools",
        timeout_keep_alive=60,
    )
    server = _QuietServer(config)
    server_task = asyncio.create_task(server.serve(sockets=[sock]), name="runtime-api")
    endpoint: Endpoint | None = None
    result = ServeResult(EndpointStatus.CREATING, url)
    try:
        models = await asyncio.to_thread(_stage, spec, options.state.cache)
        endpoint = Endpoint(
            spec, backend, models, settings=options.settings, log_sink=log_file
        )
        endpoints[spec.name] = endpoint
        starting = asyncio.create_task(endpoint.start(), name="endpoint-start")
        stopping = asyncio.create_task(stop.wait(), name="stop-wait")
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, EndpointFailedError):
                await starting
            result.status = EndpointStatus.DELETED
            return result
        stopping.cancel()
        try:
            starting.result()
        except EndpointFailedError as error:
            result.status = EndpointStatus.FAILED
            result.failure_reason = str(error)
            result.failure_logs = error.logs
            result.exit_status = error.exit_status
            record.status, record.failure_reason = str(EndpointStatus.FAILED), str(error)
            options.state.write(record)
            sink.status(spec.name, str(EndpointStatus.FAILED), str(error))
            return result
        record.status = str(EndpointStatus.IN_SERVICE)
        options.state.write(record)
        sink.status(spec.name, str(EndpointStatus.IN_SERVICE), url)
        result.status = EndpointStatus.IN_SERVICE
        await stop.wait()
        sink.status(spec.name, str(EndpointStatus.DELETING), "stopping containers")
        return result
    finally:
        if endpoint is not None:
            await endpoint.stop()
            result.metrics = endpoint.metrics
            if result.status == EndpointStatus.IN_SERVICE:
                result.status = EndpointStatus.DELETED
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await server_task
        log_file.close()
        if result.status != EndpointStatus.FAILED:
            options.state.remove(spec.name, os.getpid())
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)
