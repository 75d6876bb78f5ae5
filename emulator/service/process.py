"""``smlocal server``: the local SageMaker service, control plane and runtime API on one port.

Owns the service's life: claim the port, open the state (SQLite under
``$SMLOCAL_HOME/service/``), find every container an earlier run of this service left (by
the ``smlocal.session`` label, which is this state directory's service id), serve, and bring
back every endpoint that was InService: after a SIGKILL its containers still run, and those
of the deployed fleet that answer /ping are adopted, fresh ones start for the rest, and every
other container is removed (nothing orphaned or duplicated). On SIGINT/SIGTERM every
container stops gracefully while the records stay, so the next start brings the same
endpoints back (started afresh).

``$SMLOCAL_HOME/service/server.json`` says where a running service listens (``smlocal server
status`` / ``stop``); the process can also run detached (``python -m
smlocal.emulator.service.process``), its output in ``$SMLOCAL_HOME/service/server.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import uvicorn

from smlocal.emulator.asgi_errors import AwsShaped
from smlocal.emulator.aws_errors import load_error_table
from smlocal.emulator.backend import LABEL_SESSION, ContainerBackend, ContainerInfo
from smlocal.emulator.endpoint import LogSink, MonitorSettings
from smlocal.emulator.errors import ConfigError
from smlocal.emulator.http_guard import HttpLimits, guarded_protocol, raise_open_files_limit
from smlocal.emulator.log_files import LogFiles
from smlocal.emulator.runtime_api import RuntimeApi
from smlocal.emulator.server import QuietServer, bind_socket, fast_loop_factory
from smlocal.emulator.service.async_inference import AsyncInference
from smlocal.emulator.service.async_routes import AsyncRouting
from smlocal.emulator.service.control_plane import ControlPlane, is_control_plane
from smlocal.emulator.service.fast_gate import ServiceFastPath
from smlocal.emulator.service.hosting import HostingService
from smlocal.emulator.service.origin_guard import refusal, refuse
from smlocal.emulator.service.store import Store
from smlocal.emulator.service.transform_jobs import TransformJobs
from smlocal.emulator.state import StateDir, process_alive

__all__ = [
    "ServiceApp",
    "ServiceRecord",
    "read_service_record",
    "run_service",
    "start_detached_service",
]

_READY_TIMEOUT_S = 60.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceRecord:
    pid: int
    url: str
    started_at: float


def _service_dir(state: StateDir) -> Path:
    return state.private_dir("service")


def _lock_path(state: StateDir) -> Path:
    return _service_dir(state) / "lock"


def _claim(state: StateDir) -> IO[str]:
    """Hold this home's service lock for the life of the process (the kernel drops it on
    exit, SIGKILL included): two services can never share one state."""
    handle = _lock_path(state).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        running = read_service_record(state)
        where = f" at {running.url} (pid {running.pid})" if running else ""
        raise ConfigError(
            f"the service for {state.root} already runs{where}; stop it with "
            "`smlocal server stop`, or set SMLOCAL_HOME to run another"
        ) from None
    return handle


def _lock_held(state: StateDir) -> bool:
    path = state.root / "service" / "lock"
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def read_service_record(state: StateDir) -> ServiceRecord | None:
    """Where this SMLOCAL_HOME's service listens, if it runs: its process holds the lock (a
    record left by a killed service, or a reused pid, does not count)."""
    path = state.root / "service" / "server.json"
    try:
        record = ServiceRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return record if process_alive(record.pid) and _lock_held(state) else None


def _service_id(state: StateDir) -> str:
    """A stable id per state directory: the label its containers carry."""
    path = _service_dir(state) / "id"
    if not path.exists():
        path.write_text(f"service-{uuid.uuid4().hex[:12]}\n")
    return path.read_text().strip()


class ServiceApp:
    """One port: JSON 1.1 control-plane calls to ``POST /``, everything else to the runtime;
    on loopback, nothing a web page sent (:mod:`~smlocal.emulator.service.origin_guard`)."""

    def __init__(self, control_plane: ControlPlane, runtime: RuntimeApi | AsyncRouting) -> None:
        self.control_plane = control_plane
        self.runtime = runtime

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and (reason := refusal(scope)) is not None:
            log.warning("refused a request: %s", reason)
            await refuse(send, reason)
            return
        if is_control_plane(scope):
            await self.control_plane(scope, receive, send)
        else:
            await self.runtime(scope, receive, send)


class _EndpointLogs:
    """Container output per endpoint, appended to ``$SMLOCAL_HOME/logs/NAME.log`` in
    batches (:class:`~smlocal.emulator.log_files.LogFiles`): a line per request costs the
    pump a buffered write, not a syscall."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self._files: LogFiles[str] = LogFiles(
            lambda name: self.state.log_file(name).open("a", encoding="utf-8")
        )

    def sink(self, name: str) -> LogSink:
        append = self._files.append

        def write(source: str, line: str) -> None:
            append(name, f"{source} | {line}\n")

        return write

    def last_written(self, name: str) -> float | None:
        """When the endpoint's log last got a line (its file's mtime), if it has one."""
        try:
            return self.state.log_file(name).stat().st_mtime
        except OSError:
            return None

    def close(self) -> None:
        self._files.close()


def _survey(backend: ContainerBackend, service_id: str) -> list[ContainerInfo]:
    """Every container an earlier run of this service left (after a SIGKILL they still run),
    for :meth:`HostingService.recover` to adopt or remove. Taken before the API answers, so
    no container of this run is among them."""
    found = []
    for container_id in backend.find({LABEL_SESSION: service_id}):
        try:
            found.append(backend.inspect(container_id))
        except Exception as error:  # gone meanwhile, or unreadable: make sure it is gone
            log.debug("container %s cannot be inspected: %s", container_id[:12], error)
            with contextlib.suppress(Exception):
                backend.remove(container_id)
    return found


def image_resolver(
    backend: ContainerBackend, registry_mirror: str | None
) -> Callable[[str], str | None]:
    """How an ECR URI's ``REPO:TAG`` / ``REPO@DIGEST`` finds its image here: the local engine
    first, then (with a mirror, e.g. the registry ``promote --registry-url`` pushed to) a pull
    from ``MIRROR/REPO...``."""
    local: Callable[[str], str | None] = getattr(backend, "local_image", lambda _ref: None)
    pull: Callable[[str], bool] | None = getattr(backend, "pull", None)

    def resolve(reference: str) -> str | None:
        found = local(reference)
        if found is not None or registry_mirror is None or pull is None:
            return found
        mirrored = f"{registry_mirror.rstrip('/')}/{reference}"
        return mirrored if pull(mirrored) else None

    return resolve


async def run_service(
    backend: ContainerBackend,
    *,
    state: StateDir,
    settings: MonitorSettings,
    sock: socket.socket,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] | None = None,
    registry_mirror: str | None = None,
    invocation_timeout_s: float = 60.0,
    http_limits: HttpLimits | None = None,
) -> None:
    """Serve until ``stop`` is set. ``on_ready(url)`` once the port answers."""
    http_limits = http_limits or HttpLimits()
    load_error_table()
    lock = _claim(state)
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    service_id = _service_id(state)
    leftovers = await asyncio.to_thread(_survey, backend, service_id)
    try:
        store = Store(_service_dir(state) / "state.db")
    except (sqlite3.DatabaseError, RuntimeError) as error:
        lock.close()
        raise ConfigError(
            f"cannot open the service's state {_service_dir(state) / 'state.db'}: {error}"
        ) from None
    logs = _EndpointLogs(state)
    hosting = HostingService(
        store,
        backend,
        cache_dir=state.cache,
        settings=settings,
        session_id=service_id,
        log_sink=logs.sink,
        resolve_image=image_resolver(backend, registry_mirror),
        invocation_timeout_s=invocation_timeout_s,
    )
    asynchronous = AsyncInference(store, hosting.endpoints, _service_dir(state) / "async.db")
    transforms = TransformJobs(
        store,
        backend,
        cache_dir=state.cache,
        work_dir=_service_dir(state) / "transform",
        log_dir=state.private_dir("logs") / "transform-jobs",
        settings=settings,
        session_id=service_id,
        resolve_image=hosting._resolve_image,
    )
    hosting.observers.append(asynchronous.on_endpoint_event)
    runtime_api = RuntimeApi(hosting.endpoints)
    runtime = AsyncRouting(runtime_api, asynchronous)
    # Records only, before the API answers: nobody sees a job "InProgress" that nothing runs.
    await transforms.recover()
    app = AwsShaped(ServiceApp(ControlPlane(hosting, transforms), runtime))
    server = QuietServer(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="none",
            http=guarded_protocol(http_limits, ServiceFastPath(runtime_api, asynchronous)),
            ws="none",
            timeout_keep_alive=http_limits.keep_alive_s,
        )
    )
    record_path = _service_dir(state) / "server.json"
    server_task = asyncio.create_task(server.serve(sockets=[sock]), name="service-api")
    try:
        while not server.started and not server_task.done():
            await asyncio.sleep(0.01)
        record_path.write_text(json.dumps(asdict(ServiceRecord(os.getpid(), url, time.time()))))
        await hosting.recover(leftovers, logs.last_written)  # sweeps transform containers too
        asynchronous.start()
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
    finally:
        try:
            await asynchronous.close()
            await transforms.close()
            await hosting.close()
        finally:
            # Whatever a step above raised, the port, the record and the lock are let go:
            # else a restart in this process finds the service "already running".
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await server_task
            _let_go(record_path, store, logs, lock)


def _let_go(record_path: Path, store: Store, logs: _EndpointLogs, lock: IO[str]) -> None:
    """The service's record, state database, log files and lock, released."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        if json.loads(record_path.read_text()).get("pid") == os.getpid():
            record_path.unlink()
    store.close()
    logs.close()
    lock.close()


def main(
    host: str,
    port: int,
    registry_mirror: str | None = None,
    *,
    ping_interval_s: float = 5.0,
    invocation_timeout_s: float = 60.0,
) -> int:
    """The service in this process until SIGINT/SIGTERM (``smlocal server``)."""
    import signal

    from smlocal.emulator.docker_backend import DockerBackend

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s: anyone who reaches it can run containers and read model paths "
            "and S3 with this user's rights; the service checks no credentials",
            host,
        )
    raise_open_files_limit()  # the connection limit then leaves room for the containers
    backend = DockerBackend()
    settings = MonitorSettings(
        ping_interval_s=ping_interval_s, host_cpus=backend.host_cpus(), host_ip="127.0.0.1"
    )
    sock = bind_socket(host, port)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)

        def ready(url: str) -> None:
            print(f"smlocal service: listening on {url}", flush=True)

        await run_service(
            backend,
            state=StateDir(),
            settings=settings,
            sock=sock,
            stop=stop,
            on_ready=ready,
            registry_mirror=registry_mirror,
            invocation_timeout_s=invocation_timeout_s,
        )

    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        runner.run(serve())
    return 0


def start_detached_service(
    state: StateDir,
    host: str,
    port: int,
    registry_mirror: str | None = None,
    *,
    ping_interval_s: float = 5.0,
    invocation_timeout_s: float = 60.0,
) -> ServiceRecord:
    """``smlocal server --detach``: the service in a process of its own, its output in
    ``service/server.log``; its record once it answers, or an error carrying this run's
    log lines."""
    from smlocal.emulator.detach import log_tail, spawn
    from smlocal.emulator.errors import SmlocalError

    log_path = _service_dir(state) / "server.log"
    log_path.touch(mode=0o600)
    since = log_path.stat().st_size
    argv = [sys.executable, "-m", "smlocal.emulator.service.process", "--host", host]
    argv += ["--port", str(port)]
    argv += ["--registry-mirror", registry_mirror] if registry_mirror else []
    argv += ["--ping-interval", str(ping_interval_s)]
    argv += ["--invocation-timeout", str(invocation_timeout_s)]
    child = spawn(argv, log_path, env={**os.environ, "SMLOCAL_HOME": str(state.root)})
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        record = read_service_record(state)
        if record is not None and record.pid == child.pid:
            return record
        code = child.poll()
        if code is not None:
            tail = log_tail(log_path, since)
            last = tail.strip().splitlines()[-1] if tail.strip() else ""
            if code == ConfigError.exit_code and last.startswith("error: "):
                # The child said what was wrong with the request (a busy port ...): its words,
                # once, rather than a generic line followed by the same words from the log.
                raise ConfigError(last.removeprefix("error: "))
            error = ConfigError if code == ConfigError.exit_code else SmlocalError
            raise error(
                f"the service exited with code {code} before it was up; log: {log_path}\n{tail}"
            )
        time.sleep(0.1)
    raise SmlocalError(
        f"the service did not come up within {_READY_TIMEOUT_S:g} s; log: {log_path}"
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--registry-mirror", default=None)
    parser.add_argument("--ping-interval", type=float, default=5.0)
    parser.add_argument("--invocation-timeout", type=float, default=60.0)
    arguments = parser.parse_args()
    from smlocal.emulator.errors import SmlocalError

    try:
        sys.exit(
            main(
                arguments.host,
                arguments.port,
                arguments.registry_mirror,
                ping_interval_s=arguments.ping_interval,
                invocation_timeout_s=arguments.invocation_timeout,
            )
        )
    except SmlocalError as failure:
        print(f"error: {failure}", file=sys.stderr, flush=True)
        sys.exit(int(failure.exit_code))
