"""Health checks the way SageMaker makes them: ``GET /ping``, 200 within 2 seconds.

Owns one ping (:func:`ping`) and the startup wait strategy (:class:`WaitStrategy`,
:func:`wait_until_healthy`): ping at a short interval until the first good answer, the
deadline, or the container's exit — whichever comes first. An exit is reported at once with
its code and last log lines, never by waiting out the window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from smlocal.emulator.backend import ContainerBackend, RunningContainer
from smlocal.emulator.errors import BackendError, EndpointFailedError

__all__ = ["PING_TIMEOUT_S", "PingResult", "WaitStrategy", "ping", "wait_until_healthy"]

PING_TIMEOUT_S = 2.0
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class PingResult:
    ok: bool
    status: int | None
    elapsed_s: float
    error: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"200 in {self.elapsed_s * 1000:.0f} ms"
        if self.status is not None:
            return f"HTTP {self.status} in {self.elapsed_s * 1000:.0f} ms"
        return self.error


async def ping(
    session: aiohttp.ClientSession, address: tuple[str, int], timeout_s: float = PING_TIMEOUT_S
) -> PingResult:
    """One SageMaker health check: a 200 within ``timeout_s`` passes; anything else fails."""
    url = f"http://{address[0]}:{address[1]}/ping"
    started = time.perf_counter()
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            await response.read()
            elapsed = time.perf_counter() - started
            return PingResult(response.status == 200, response.status, elapsed)
    except TimeoutError:
        return PingResult(
            False, None, time.perf_counter() - started, f"no answer within {timeout_s:g} s"
        )
    except aiohttp.ClientError as error:
        reason = str(error) or error.__class__.__name__
        return PingResult(
            False, None, time.perf_counter() - started, f"connection failed: {reason}"
        )


@dataclass(frozen=True)
class WaitStrategy:
    """Startup health checking: the window, the poll interval and each ping's timeout."""

    deadline_s: float
    # Pings are cheap, so poll often (InService follows the first 200 closely); asking the
    # engine whether the container exited costs an API call, so that is done less often.
    interval_s: float = 0.01
    ping_timeout_s: float = PING_TIMEOUT_S
    exit_check_interval_s: float = 0.1


def exit_message(backend: ContainerBackend, container: RunningContainer) -> str | None:
    """Why the container is no longer running, or None while it runs."""
    try:
        state = backend.state(container.id)
    except BackendError as error:  # removed behind our back
        return str(error)
    if state.running:
        return None
    if state.oom_killed:
        return (
            f"container {container.name} was killed for using more memory than the instance "
            f"type allows (OOM, exit code {state.exit_code})"
        )
    detail = f": {state.error}" if state.error else ""
    return f"container {container.name} exited with code {state.exit_code}{detail}"


async def wait_until_healthy(
    backend: ContainerBackend,
    container: RunningContainer,
    strategy: WaitStrategy,
    session: aiohttp.ClientSession,
    *,
    on_stalled: Callable[[PingResult], None] | None = None,
    stalled_after_s: float = 5.0,
) -> float:
    """Ping until the first 200; return the seconds it took.

    Raises EndpointFailedError when the container exits (at once) or the window closes; the
    error carries the container's last log lines. ``on_stalled(last ping)`` once, when the
    container is still not healthy after ``stalled_after_s`` (a hint, long before the window
    closes).
    """
    started = time.monotonic()
    deadline = started + strategy.deadline_s
    last = PingResult(False, None, 0.0, "no ping answered yet")
    next_exit_check = started
    stalled = on_stalled is None
    while True:
        last = await ping(session, container.published, strategy.ping_timeout_s)
        if last.ok:
            return time.monotonic() - started
        if not stalled and time.monotonic() - started >= stalled_after_s:
            stalled = True
            assert on_stalled is not None
            on_stalled(last)
        exited = None
        if time.monotonic() >= next_exit_check:
            exited = await asyncio.to_thread(exit_message, backend, container)
            next_exit_check = time.monotonic() + strategy.exit_check_interval_s
        if exited is not None:
            logs = await asyncio.to_thread(backend.logs, container.id, LOG_TAIL_LINES)
            try:
                code = (await asyncio.to_thread(backend.state, container.id)).exit_code
            except BackendError:
                code = None
            raise EndpointFailedError(
                f"{exited} before passing a health check", logs=logs, exit_status=code
            )
        if time.monotonic() >= deadline:
            logs = await asyncio.to_thread(backend.logs, container.id, LOG_TAIL_LINES)
            raise EndpointFailedError(
                f"container {container.name} did not pass a health check (GET /ping answering "
                f"200 within {strategy.ping_timeout_s:g} s) within the "
                f"{strategy.deadline_s:g} s startup window; last ping: {last.describe()}. "
                "Check that the server listens on 0.0.0.0:8080 (or $SAGEMAKER_BIND_TO_PORT) "
                "and that /ping answers quickly",
                logs=logs,
            )
        await asyncio.sleep(min(strategy.interval_s, max(0.0, deadline - time.monotonic())))
