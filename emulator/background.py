"""Run the serving process's loop in a background thread of the calling program.

For programs that drive an endpoint from Python — contract tests, benchmarks, the test suite —
``serve_in_background(spec, backend)`` starts :func:`emulator.server.serve` on a free loopback
port (unless told otherwise), returns once the endpoint is InService or Failed, and stops it
(containers included) when the ``with`` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from smlocal.emulator.backend import ContainerBackend
from smlocal.emulator.server import ServeOptions, ServeResult, bind_socket, serve
from smlocal.emulator.spec import EndpointSpec

__all__ = ["BackgroundEndpoint", "RecordingSink", "serve_in_background"]


@dataclass
class RecordingSink:
    """Keeps every container log line and status change (thread-safe appends)."""

    logs: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[tuple[str, str, str]] = field(default_factory=list)

    def container_log(self, source: str, line: str) -> None:
        self.logs.append((source, line))

    def status(self, endpoint: str, status: str, detail: str) -> None:
        self.statuses.append((endpoint, status, detail))


@dataclass
class BackgroundEndpoint:
    url: str
    sink: RecordingSink
    result: ServeResult | None = None
    error: BaseException | None = None

    @property
    def status(self) -> str | None:
        return self.sink.statuses[-1][1] if self.sink.statuses else None


@contextlib.contextmanager
def serve_in_background(
    spec: EndpointSpec,
    backend: ContainerBackend,
    options: ServeOptions | None = None,
    *,
    wait_s: float | None = None,
) -> Iterator[BackgroundEndpoint]:
    """Serve ``spec`` in a thread; yield once InService or Failed; stop on exit.

    ``options.port`` 0 (the default here) picks a free port. Raises TimeoutError when the
    endpoint is neither InService nor Failed after ``wait_s`` (default: the startup window
    plus a minute for staging).
    """
    options = options or ServeOptions(port=0)
    sock = bind_socket(options.host, options.port)
    port = sock.getsockname()[1]
    sink = RecordingSink()
    handle = BackgroundEndpoint(url=f"http://{options.host}:{port}", sink=sink)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            handle.result = loop.run_until_complete(
                serve(spec, backend, sink, options, sock=sock, stop=stop)
            )
        except BaseException as error:
            handle.error = error
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"serve-{spec.name}", daemon=True)
    thread.start()
    limit = wait_s if wait_s is not None else spec.startup_timeout_s + 60
    deadline = time.monotonic() + limit
    try:
        # Inside the try: Ctrl-C while the endpoint is Creating must stop it too.
        while (
            handle.status not in ("InService", "Failed")
            and thread.is_alive()
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        if handle.error is not None:
            raise handle.error
        if handle.status not in ("InService", "Failed"):
            raise TimeoutError(f"endpoint {spec.name} still {handle.status} after {limit:g} s")
        yield handle
    finally:
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop may be closing already
                loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=spec.startup_timeout_s + 90)
