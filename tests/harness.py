"""Test support: a real emulator in a background thread, and boto3 clients pointed at it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from smlocal.emulator.backend import ContainerBackend
from smlocal.emulator.background import BackgroundEndpoint, serve_in_background
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.server import ServeOptions
from smlocal.emulator.spec import EndpointSpec
from smlocal.emulator.state import StateDir

__all__ = ["RequestLoop", "Serving", "runtime_client", "serving"]


def runtime_client(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(
            signature_version=UNSIGNED, retries={"total_max_attempts": 1}, read_timeout=120
        ),
    )


class Serving(BackgroundEndpoint):
    def runtime_client(self) -> Any:
        return runtime_client(self.url)


@contextlib.contextmanager
def serving(
    spec: EndpointSpec,
    backend: ContainerBackend,
    state_root: Path,
    settings: MonitorSettings | None = None,
    wait_s: float = 120.0,
) -> Iterator[Serving]:
    """Serve ``spec`` on a free port with its state under ``state_root``."""
    options = ServeOptions(
        port=0, settings=settings or MonitorSettings(), state=StateDir(state_root)
    )
    with serve_in_background(spec, backend, options, wait_s=wait_s) as handle:
        handle.__class__ = Serving
        yield handle  # type: ignore[misc]


class RequestLoop:
    """Calls ``invoke`` back to back in a thread until the ``with`` block ends; keeps every
    answer and every failure (for "not one request fails during ..." tests)."""

    def __init__(self, invoke: Callable[[], Any]) -> None:
        self._invoke = invoke
        self.answers: list[Any] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(self._invoke())
            except Exception as error:
                self.failures.append(repr(error))

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
