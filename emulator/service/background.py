"""The local service in a background thread of the calling program (tests, benchmarks).

``with service_in_background(backend, state=StateDir(tmp)) as url:`` starts
:func:`~smlocal.emulator.service.process.run_service` on a free loopback port, yields its URL
once it answers, and stops it (every container included) when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from smlocal.emulator.backend import ContainerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.http_guard import HttpLimits
from smlocal.emulator.server import bind_socket, fast_loop_factory
from smlocal.emulator.service.process import run_service
from smlocal.emulator.state import StateDir

__all__ = ["service_in_background"]


@contextlib.contextmanager
def service_in_background(
    backend: ContainerBackend,
    *,
    state: StateDir,
    settings: MonitorSettings | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    ready_timeout_s: float = 60.0,
    invocation_timeout_s: float = 60.0,
    http_limits: HttpLimits | None = None,
) -> Iterator[str]:
    sock = bind_socket(host, port)
    loop = (fast_loop_factory() or asyncio.new_event_loop)()
    stop = asyncio.Event()
    ready = threading.Event()
    failure: list[BaseException] = []
    url: list[str] = []

    def on_ready(address: str) -> None:
        url.append(address)
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(
                run_service(
                    backend,
                    state=state,
                    settings=settings or MonitorSettings(),
                    sock=sock,
                    stop=stop,
                    on_ready=on_ready,
                    invocation_timeout_s=invocation_timeout_s,
                    http_limits=http_limits,
                )
            )
        except BaseException as error:
            failure.append(error)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="smlocal-service", daemon=True)
    thread.start()
    ready.wait(ready_timeout_s)
    try:
        if failure:
            raise failure[0]
        if not url:
            raise TimeoutError(f"the service did not answer within {ready_timeout_s:g} s")
        yield url[0]
    finally:
        if thread.is_alive():
            # The thread may be closing its loop right now (a start that failed).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=120)
