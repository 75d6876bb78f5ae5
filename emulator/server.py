"""One endpoint and its runtime API on a port of its own, in-process, until stopped.

What contract-test, the load-test target and promote's quality gate drive from Python
(through :func:`smlocal.emulator.background.serve_in_background`); ``smlocal serve`` uses the
local service instead (:mod:`smlocal.emulator.service`). Also the serving pieces the service
shares: :func:`bind_socket`, :class:`QuietServer`, :func:`fast_loop_factory`.

Owns the order of things: claim the port (a clear error if taken), stage each variant's model,
open the runtime API at once (so status is visible while the endpoint is Creating), bring the
endpoint InService or Failed, keep the container log in a file, and on stop stop containers
with SIGTERM then SIGKILL after the grace period. Reports progress through an
:class:`EventSink`; never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import uvicorn

from smlocal.emulator.asgi_errors import AwsShaped
from smlocal.emulator.backend import ContainerBackend
from smlocal.emulator.endpoint import Endpoint, EndpointStatus, MonitorSettings
from smlocal.emulator.errors import ConfigError, EndpointFailedError
from smlocal.emulator.http_guard import HttpLimits, guarded_protocol
from smlocal.emulator.log_files import LogFiles
from smlocal.emulator.metrics import EndpointMetrics
from smlocal.emulator.runtime_api import create_app
from smlocal.emulator.spec import EndpointSpec
from smlocal.emulator.state import StateDir

if TYPE_CHECKING:
    pass

__all__ = [
    "EventSink",
    "QuietServer",
    "ServeOptions",
    "ServeResult",
    "bind_socket",
    "fast_loop_factory",
    "serve",
]

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
    http_limits: HttpLimits = field(default_factory=HttpLimits)


@dataclass
class ServeResult:
    status: EndpointStatus
    url: str
    failure_reason: str = ""
    failure_logs: str = ""
    exit_status: int | None = None
    metrics: EndpointMetrics | None = None
    reached_in_service: bool = False


def bind_socket(host: str, port: int) -> socket.socket:
    """Claim ``host:port`` now, so a busy port is a clear error before any container starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto says TCP, and without it responses meet 40 ms delayed-ACK stalls.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the serving process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _LogFile:
    """The endpoint's container log file (written in batches, off the pumps' threads'
    syscalls), each line also forwarded to the run's :class:`EventSink`."""

    def __init__(self, path: Path, forward: EventSink) -> None:
        self._file: LogFiles[Path] = LogFiles(lambda p: p.open("a", encoding="utf-8"))
        self._path = path
        self._forward = forward

    def __call__(self, source: str, line: str) -> None:
        self._file.append(self._path, f"{source} | {line}\n")
        self._forward.container_log(source, line)

    def close(self) -> None:
        self._file.close()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Generator[None, None, None]:
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Only the main thread may own signals; a background serve (tests, contract checks)
        # is stopped through ``stop`` alone.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


class _Run:
    """One serve: the run record, the log file and the endpoint, from Creating to the end."""

    def __init__(
        self,
        spec: EndpointSpec,
        backend: ContainerBackend,
        sink: EventSink,
        options: ServeOptions,
        *,
        url: str,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.sink = sink
        self.options = options
        self.log_file = _LogFile(options.state.log_file(spec.name), sink)
        self.result = ServeResult(EndpointStatus.CREATING, url)
        self.endpoint: Endpoint | None = None

    def announce(self, status: EndpointStatus, detail: str) -> None:
        self.sink.status(self.spec.name, str(status), detail)

    async def bring_up(self, endpoints: dict[str, Endpoint], stop: asyncio.Event) -> bool:
        """Stage, start and gate the endpoint; False when it failed or ``stop`` came first."""
        from smlocal.emulator.artifacts import stage_models

        models = await stage_models(
            {v.name: v.model for v in self.spec.variants}, self.options.state.cache
        )
        self.endpoint = Endpoint(
            self.spec,
            self.backend,
            models,
            settings=self.options.settings,
            log_sink=self.log_file,
        )
        endpoints[self.spec.name] = self.endpoint
        starting = asyncio.create_task(self.endpoint.start(), name="endpoint-start")
        stopping = asyncio.create_task(stop.wait(), name="stop-wait")
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, EndpointFailedError):
                await starting
            return False
        try:
            starting.result()
        except EndpointFailedError as error:
            self.result.status = EndpointStatus.FAILED
            self.result.failure_reason = str(error)
            self.result.failure_logs = error.logs
            self.result.exit_status = error.exit_status
            self.announce(EndpointStatus.FAILED, str(error))
            return False
        self.result.status = EndpointStatus.IN_SERVICE
        self.result.reached_in_service = True
        self.announce(EndpointStatus.IN_SERVICE, self.result.url)
        return True

    async def close(self) -> None:
        if self.endpoint is not None:
            await self.endpoint.stop()
            self.result.metrics = self.endpoint.metrics
        if self.result.status != EndpointStatus.FAILED:
            self.result.status = EndpointStatus.DELETED
        self.log_file.close()


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
    stop = stop or asyncio.Event()
    run = _Run(spec, backend, sink, options, url=f"http://{options.host}:{port}")
    run.announce(EndpointStatus.CREATING, f"staging model(s); runtime API at {run.result.url}")
    endpoints: dict[str, Endpoint] = {}
    runtime = create_app(endpoints)
    server = QuietServer(
        uvicorn.Config(
            AwsShaped(runtime),
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="none",
            http=guarded_protocol(options.http_limits, runtime),
            ws="none",
            timeout_keep_alive=options.http_limits.keep_alive_s,
        )
    )
    with _stop_on_signals(stop):
        server_task = asyncio.create_task(server.serve(sockets=[sock]), name="runtime-api")
        try:
            if await run.bring_up(endpoints, stop):
                await stop.wait()
                sink.status(spec.name, str(EndpointStatus.DELETING), "stopping containers")
        finally:
            await run.close()
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await server_task
    return run.result


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where installed (uvicorn[standard] brings it): cuts the proxy's CPU per request."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
