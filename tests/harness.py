"""Test support shared by unit, integration and e2e tests: run a real emulator in a thread.

``serving(spec, backend)`` starts :func:`emulator.server.serve` on a free loopback port in a
background event loop and yields once the endpoint is InService (or Failed), then stops it.
Tests talk to it over real HTTP with boto3 / httpx, exactly as users do.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from emulator.backend import ContainerBackend
from emulator.endpoint import MonitorSettings
from emulator.server import ServeOptions, ServeResult, bind_socket, serve
from emulator.spec import EndpointSpec
from emulator.state import StateDir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RecordingSink:
    logs: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[tuple[str, str, str]] = field(default_factory=list)

    def container_log(self, source: str, line: str) -> None:
        self.logs.append((source, line))

    def status(self, endpoint: str, status: str, detail: str) -> None:
        self.statuses.append((endpoint, status, detail))


@dataclass
class Serving:
    url: str
    sink: RecordingSink
    thread: threading.Thread
    result: ServeResult | None = None
    error: BaseException | None = None

    @property
    def status(self) -> str | None:
        return self.sink.statuses[-1][1] if self.sink.statuses else None

    def runtime_client(self) -> object:
        return runtime_client(self.url)


def runtime_client(url: str) -> object:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(
            signature_version=UNSIGNED,
            retries={"total_max_attempts": 1},
            read_timeout=120,
        ),
    )


@contextlib.contextmanager
def serving(
    spec: EndpointSpec,
    backend: ContainerBackend,
    state_root: Path,
    settings: MonitorSettings | None = None,
    wait_s: float = 120.0,
) -> Iterator[Serving]:
    """Serve ``spec`` in a background thread; yield when InService or Failed; stop on exit."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    options = ServeOptions(
        port=port, settings=settings or MonitorSettings(), state=StateDir(state_root)
    )
    sink = RecordingSink()
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
    handle = Serving(url=f"http://127.0.0.1:{port}", sink=sink, thread=thread)
    thread.start()
    deadline = time.monotonic() + wait_s
    while (
        handle.status not in ("InService", "Failed")
        and thread.is_alive()
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    try:
        if handle.error is not None:
            raise handle.error
        if handle.status not in ("InService", "Failed"):
            raise TimeoutError(f"endpoint {spec.name} still {handle.status} after {wait_s:g} s")
        yield handle
    finally:
        if thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=90)
