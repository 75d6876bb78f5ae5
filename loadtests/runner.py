"""Run Locust headless as child processes: one local runner, or a master and K workers.

Locust runs in its own processes because it monkey-patches the interpreter with gevent, which
must not touch the smlocal process (it may be serving the endpoint under test from asyncio
threads). Each run writes Locust's CSV files and HTML report under the given prefix, and the
locustfile's live snapshot (see :mod:`loadtests.locustfile`) feeds a progress callback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smlocal.loadtests.stats import StepStats, read_step

__all__ = [
    "LOCUSTFILE",
    "LocustError",
    "LocustTarget",
    "Snapshot",
    "generator_overloaded",
    "run_locust",
]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
Snapshot = dict[str, Any]
# Extra seconds beyond the run time before a Locust run counts as hung (start-up, workers).
_GRACE_S = 60.0
_POLL_S = 0.5


class LocustError(RuntimeError):
    """Locust did not produce statistics; carries the tail of its log."""


@dataclass(frozen=True)
class LocustTarget:
    """Where and what the locustfile invokes (passed to Locust as SMLOCAL_LT_* variables).

    Give ``payload`` (a body or ``.jsonl`` file) or ``spec`` (a contract spec's examples).
    """

    host: str
    payload: Path | None = None
    endpoint: str = ""
    path: str = ""
    content_type: str = "application/json"
    target_variant: str | None = None
    sigv4_region: str | None = None
    workers: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    spec: Path | None = None
    # --direct: the containers' own /invocations URLs, called in turn instead of ``path``.
    direct_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.payload is None) == (self.spec is None):
            raise ValueError("give exactly one of payload and spec")

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update(
            SMLOCAL_LT_ENDPOINT=self.endpoint,
            SMLOCAL_LT_PATH=self.path,
            SMLOCAL_LT_PAYLOAD=str(self.payload.resolve()) if self.payload else "",
            SMLOCAL_LT_SPEC=str(self.spec.resolve()) if self.spec else "",
            SMLOCAL_LT_CONTENT_TYPE=self.content_type,
            SMLOCAL_LT_TARGET_VARIANT=self.target_variant or "",
            SMLOCAL_LT_SIGV4_REGION=self.sigv4_region or "",
            SMLOCAL_LT_DIRECT_URLS=",".join(self.direct_urls),
        )
        return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args]


def _start(
    target: LocustTarget, users: int, spawn_rate: float, duration_s: float, prefix: Path
) -> list[subprocess.Popen[bytes]]:
    env = target.environment()
    env["SMLOCAL_LT_LIVE_FILE"] = f"{prefix}_live.json"
    env["SMLOCAL_LT_FINAL_CSV"] = str(prefix)
    log = Path(f"{prefix}_locust.log")
    common = ["--loglevel", "WARNING", "--logfile", str(log)]
    run = [
        "--headless",
        "--host", target.host,
        "--users", str(users),
        "--spawn-rate", f"{spawn_rate:g}",
        "--run-time", f"{max(1, round(duration_s))}s",
        "--csv", str(prefix),
        "--html", f"{prefix}_report.html",
        "--only-summary",
        # Failures are what we measure, not a reason for Locust to fail.
        "--exit-code-on-error", "0",
        *common,
    ]  # fmt: skip
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    if target.workers <= 0:
        return [subprocess.Popen(_locust(*run), **quiet)]  # type: ignore[call-overload]
    port = _free_port()
    master = subprocess.Popen(  # type: ignore[call-overload]
        _locust(
            *run,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            str(target.workers),
            "--expect-workers-max-wait",
            "30",
        ),
        **quiet,
    )
    workers = [
        subprocess.Popen(  # type: ignore[call-overload]
            _locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port), *common),
            **quiet,
        )
        for _ in range(target.workers)
    ]
    return [master, *workers]


def _read_live(path: Path) -> Snapshot | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def run_locust(
    target: LocustTarget,
    users: int,
    duration_s: float,
    prefix: Path,
    *,
    spawn_rate: float | None = None,
    on_progress: Callable[[Snapshot], None] | None = None,
) -> StepStats:
    """Run one headless Locust test and return its Aggregated statistics.

    ``spawn_rate`` defaults to all users at once, so the whole run is at the stated load.
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    processes = _start(target, users, spawn_rate or float(users), duration_s, prefix)
    deadline = time.monotonic() + duration_s + _GRACE_S
    master = processes[0]
    try:
        while master.poll() is None:
            if time.monotonic() > deadline:
                raise LocustError(f"Locust still running {_GRACE_S:g} s after its run time")
            snapshot = _read_live(Path(f"{prefix}_live.json"))
            if snapshot is not None and on_progress is not None:
                on_progress(snapshot)
            time.sleep(_POLL_S)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    try:
        return read_step(prefix, users)
    except (OSError, ValueError) as error:
        log = Path(f"{prefix}_locust.log")
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        raise LocustError(
            f"Locust wrote no statistics ({error}); log:\n" + "\n".join(tail)
        ) from None


def generator_overloaded(prefix: Path) -> bool:
    """Whether Locust warned that a load-generating process ran its CPU at the limit."""
    log = Path(f"{prefix}_locust.log")
    return log.exists() and "CPU usage above" in log.read_text(errors="replace")
