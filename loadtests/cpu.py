"""CPU accounting for a load test: the runtime API's process, the containers, the machine.

On a small machine the emulator's runtime API, the model container and Locust share a few
cores, so a throughput figure alone cannot say whose limit it is. Each step of a test is
bracketed by two samples of

- the process serving the runtime API: user + system time from ``/proc/PID/stat`` (all its
  threads, live and ended). When ``--image`` serves the endpoint inside the ``smlocal
  loadtest`` process, that process also runs the CLI (polling Locust, drawing the live view),
  so the thread that takes the samples is subtracted (``/proc/PID/task/TID/stat``); Locust
  runs in child processes and is never counted;
- each container of the endpoint: its cgroup's CPU seconds, from Docker's stats (a
  :class:`ContainerCpu`, :class:`~smlocal.emulator.docker_backend.DockerBackend` in real use);
- the whole machine: busy jiffies over all jiffies in ``/proc/stat``, from the moment the first
  requests were seen (Locust's own start-up would otherwise count), to tell saturated cores.

Rates (CPU-seconds per second, i.e. cores) are over the time Locust sent requests (its request
count over its Requests/s); CPU µs per request is the stable figure on noisy machines.
Wording of the figures is :mod:`loadtests.cpu_text`'s.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = ["ContainerCpu", "CpuProbe", "CpuUsage", "CpuWindow", "machine_jiffies", "thread_cpu_s"]

PROC = Path("/proc")


class ContainerCpu(Protocol):
    """Where container CPU figures come from (Docker's stats in real use; a fake in tests)."""

    def cpu_seconds(self, container_id: str) -> float: ...

    def cpu_limit(self, container_id: str) -> float | None: ...


def _stat_cpu_s(path: Path) -> float:
    # Fields after the command name (which may hold spaces and parentheses): utime is the
    # 14th field of the line, stime the 15th, both in clock ticks.
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int, tid: int | None = None, *, proc: Path = PROC) -> float:
    """CPU seconds of process ``pid`` (all its threads), or of its thread ``tid``."""
    path = proc / str(pid) / "stat" if tid is None else proc / str(pid) / "task" / str(tid) / "stat"
    return _stat_cpu_s(path)


def machine_jiffies(*, proc: Path = PROC) -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far, from /proc/stat's ``cpu`` line."""
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            # user nice system idle iowait irq softirq steal (guest is inside user already)
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            total = sum(values[:8])
            return total - idle, total
    raise ValueError(f"{proc / 'stat'} has no cpu line")


@dataclass(frozen=True)
class CpuUsage:
    """What one step used: CPU seconds over the step, and what they are measured against."""

    requests: int
    active_s: float  # seconds Locust sent requests
    runtime_api_cpu_s: float | None  # None: the runtime API's process is not on this machine
    containers: int
    container_cpu_s: float | None  # all of the endpoint's containers; None: not measured
    container_limit_cpus: float | None  # their limits summed; None: unknown or unlimited
    machine_cores: int
    machine_busy: float | None  # fraction of all cores busy while requests flowed

    def _rate(self, cpu_s: float | None) -> float | None:
        return cpu_s / self.active_s if cpu_s is not None and self.active_s > 0 else None

    def _per_request_us(self, cpu_s: float | None) -> float | None:
        return cpu_s / self.requests * 1e6 if cpu_s is not None and self.requests else None

    @property
    def runtime_api_cores(self) -> float | None:
        return self._rate(self.runtime_api_cpu_s)

    @property
    def runtime_api_us_per_request(self) -> float | None:
        return self._per_request_us(self.runtime_api_cpu_s)

    @property
    def container_cores(self) -> float | None:
        return self._rate(self.container_cpu_s)

    @property
    def container_us_per_request(self) -> float | None:
        return self._per_request_us(self.container_cpu_s)

    @property
    def container_share_of_limit(self) -> float | None:
        cores = self.container_cores
        limit = self.container_limit_cpus
        return cores / limit if cores is not None and limit else None

    def as_json(self) -> dict[str, float | int | None]:
        """The summary's ``cpu`` object (fields in loadtests/README.md)."""

        def rounded(value: float | None, digits: int) -> float | None:
            return round(value, digits) if value is not None else None

        return {
            "requests": self.requests,
            "active_s": round(self.active_s, 3),
            "runtime_api_cpu_s": rounded(self.runtime_api_cpu_s, 4),
            "runtime_api_cores": rounded(self.runtime_api_cores, 4),
            "runtime_api_us_per_request": rounded(self.runtime_api_us_per_request, 1),
            "containers": self.containers,
            "container_cpu_s": rounded(self.container_cpu_s, 4),
            "container_cores": rounded(self.container_cores, 4),
            "container_us_per_request": rounded(self.container_us_per_request, 1),
            "container_limit_cpus": self.container_limit_cpus,
            "container_share_of_limit": rounded(self.container_share_of_limit, 4),
            "machine_cores": self.machine_cores,
            "machine_busy": rounded(self.machine_busy, 4),
        }


@dataclass
class CpuWindow:
    """One step's measurement: opened by :meth:`CpuProbe.start`, closed by :meth:`finish`."""

    probe: CpuProbe
    runtime_start: float | None
    containers_start: dict[str, float]
    started_at: float
    # The machine at the window's start: the fallback when no request was seen flowing.
    machine_opened: tuple[int, int] | None = None
    machine_start: tuple[int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def mark_active(self) -> None:
        """Requests are flowing now: the machine's busy share counts from here (once)."""
        with self._lock:
            if self.machine_start is None:
                self.machine_start = self.probe.machine()

    def finish(self, requests: int, rps: float) -> CpuUsage:
        probe = self.probe
        runtime_end = probe.runtime()
        containers_end = probe.containers_now()
        machine_end = probe.machine()
        elapsed = probe.clock() - self.started_at
        runtime = (
            runtime_end - self.runtime_start
            if runtime_end is not None and self.runtime_start is not None
            else None
        )
        # A container gone (or replaced) mid-step has no end figure: leave it out rather than
        # count a partial one, and say "not measured" if none is left.
        common = [c for c in self.containers_start if c in containers_end]
        container = (
            sum(max(0.0, containers_end[c] - self.containers_start[c]) for c in common)
            if common
            else None
        )
        busy: float | None = None
        machine_start = self.machine_start or self.machine_opened
        if machine_start is not None and machine_end is not None:
            busy_delta = machine_end[0] - machine_start[0]
            total_delta = machine_end[1] - machine_start[1]
            busy = busy_delta / total_delta if total_delta > 0 else None
        # Locust's Requests/s is requests over the span they were sent in; outside it (start
        # and stop of Locust) neither the runtime API nor the container has work to do.
        active = requests / rps if rps > 0 and requests else elapsed
        return CpuUsage(
            requests=requests,
            active_s=min(active, elapsed) if elapsed > 0 else active,
            runtime_api_cpu_s=max(0.0, runtime) if runtime is not None else None,
            containers=len(common),
            container_cpu_s=container,
            container_limit_cpus=probe.limit(common),
            machine_cores=probe.cores,
            machine_busy=busy,
        )


class CpuProbe:
    """Samples the runtime API's process, the endpoint's containers and the machine.

    ``runtime_pid`` None: the runtime API is elsewhere (AWS, an unknown URL). ``shared_tid``:
    a thread of that process which is not the runtime API's (the caller's own, when the
    endpoint is served in-process): its CPU is subtracted.
    """

    def __init__(
        self,
        *,
        runtime_pid: int | None,
        shared_tid: int | None = None,
        containers: Sequence[str] = (),
        reader: ContainerCpu | None = None,
        proc: Path = PROC,
        clock: Callable[[], float] = time.monotonic,
        cores: int | None = None,
    ) -> None:
        self.runtime_pid = runtime_pid
        self.shared_tid = shared_tid
        self.container_ids = tuple(containers) if reader is not None else ()
        self.reader = reader
        self.proc = proc
        self.clock = clock
        self.cores = cores or os.cpu_count() or 1
        self._limits: dict[str, float | None] = {}

    def runtime(self) -> float | None:
        if self.runtime_pid is None:
            return None
        try:
            total = thread_cpu_s(self.runtime_pid, proc=self.proc)
            if self.shared_tid is not None:
                total -= thread_cpu_s(self.runtime_pid, self.shared_tid, proc=self.proc)
        except (OSError, ValueError, IndexError):
            return None  # the process ended (or is not visible here)
        return total

    def containers_now(self) -> dict[str, float]:
        figures: dict[str, float] = {}
        if self.reader is None:
            return figures
        for container_id in self.container_ids:
            try:
                figures[container_id] = self.reader.cpu_seconds(container_id)
            except Exception:  # noqa: S112 - gone or unreadable: left out, and said so
                continue
        return figures

    def machine(self) -> tuple[int, int] | None:
        try:
            return machine_jiffies(proc=self.proc)
        except (OSError, ValueError):
            return None

    def limit(self, container_ids: Sequence[str]) -> float | None:
        """The summed CPU limit of ``container_ids``; None if any has none (or is unknown)."""
        if not container_ids or self.reader is None:
            return None
        total = 0.0
        for container_id in container_ids:
            if container_id not in self._limits:
                try:
                    self._limits[container_id] = self.reader.cpu_limit(container_id)
                except Exception:  # an unknown limit: the share is not stated
                    self._limits[container_id] = None
            value = self._limits[container_id]
            if value is None:
                return None
            total += value
        return total

    def start(self) -> CpuWindow:
        return CpuWindow(
            probe=self,
            runtime_start=self.runtime(),
            containers_start=self.containers_now(),
            started_at=self.clock(),
            machine_opened=self.machine(),
        )
