"""Nothing a contract-test run starts outlives it: per-run labels, removal, and a sweep.

Every container a run starts carries the run's labels:

    smlocal.contract-run      the run's id (12 hex digits)
    smlocal.contract-pid      the process running it
    smlocal.contract-host     that process's host name
    smlocal.contract-started  the process's start time (Linux: /proc/PID/stat field 22), so a
                              PID reused by another process is not taken for the run

:class:`RunContainers` is a run's own ledger: every start goes through it, so once the run is
closing (finished, failed, Ctrl-C or SIGTERM) no new container is started, one whose
``docker run`` returns late is removed at once, and :meth:`RunContainers.close` removes every
container carrying the run's id. :func:`sweep_stale` removes containers of *earlier* runs on
this host whose process is gone (killed with SIGKILL, or a machine that lost power); it never
touches a container without these labels (the service's, ``smlocal serve``'s), one of another
host, or one whose process still runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import docker.errors

from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.errors import BackendError

__all__ = [
    "LABEL_HOST",
    "LABEL_PID",
    "LABEL_RUN",
    "LABEL_STARTED",
    "ContractDocker",
    "RunContainers",
    "RunIdentity",
    "SuiteInterrupted",
    "deferred_signals",
    "is_stale",
    "process_start",
    "sweep_stale",
]

log = logging.getLogger(__name__)

LABEL_RUN = "smlocal.contract-run"
LABEL_PID = "smlocal.contract-pid"
LABEL_HOST = "smlocal.contract-host"
LABEL_STARTED = "smlocal.contract-started"
# A `docker run` in flight when the run closes normally returns within seconds.
IN_FLIGHT_WAIT_S = 15.0


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None if unknown."""
    try:
        stat = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()  # noqa: SIM115
    except OSError:
        return None
    # Field 2 (the command) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class RunIdentity:
    run_id: str
    pid: int
    host: str
    started: str | None

    @classmethod
    def current(cls) -> RunIdentity:
        pid = os.getpid()
        return cls(uuid.uuid4().hex[:12], pid, socket.gethostname(), process_start(pid))

    def labels(self) -> dict[str, str]:
        labels = {LABEL_RUN: self.run_id, LABEL_PID: str(self.pid), LABEL_HOST: self.host}
        if self.started is not None:
            labels[LABEL_STARTED] = self.started
        return labels


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def is_stale(
    labels: Mapping[str, str],
    me: RunIdentity,
    *,
    alive: Callable[[int], bool] = _alive,
    started_of: Callable[[int], str | None] = process_start,
) -> bool:
    """True only for a container of an earlier run on this host whose process is gone.

    Anything else is kept: no run label (not contract-test's), this run, another host, a PID
    that cannot be read, or a live process — unless that process demonstrably started at
    another time than the run did (the PID was reused).
    """
    run = labels.get(LABEL_RUN)
    if not run or run == me.run_id or labels.get(LABEL_HOST) != me.host:
        return False
    pid_text = labels.get(LABEL_PID, "")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if not alive(pid):
        return True
    recorded = labels.get(LABEL_STARTED)
    now = started_of(pid)
    return recorded is not None and now is not None and recorded != now


class ContractDocker(DockerBackend):
    """Docker with the few extra questions contract-test asks of it."""

    def labelled(self, key: str) -> list[tuple[str, str, dict[str, str]]]:
        """(id, name, labels) of every container, running or not, that carries label ``key``."""
        try:
            found = self._client.containers.list(all=True, filters={"label": [key]})
        except docker.errors.APIError as error:
            raise BackendError(f"cannot list containers: {error.explanation}") from None
        return [
            (c.id, str(c.name), dict((c.attrs.get("Config") or {}).get("Labels") or {}))
            for c in found
        ]

    def listen_backlogs(self, container_id: str, port: int) -> int | None:
        """The listen backlog of the socket on ``port`` in the container's network namespace
        (``ss -ltn``'s Send-Q), or None when it cannot be read.

        ``ss`` runs from the host in the container's namespace (``nsenter -n``, needs root and
        a local engine), else inside the container (often not installed)."""
        try:
            container = self._container(container_id)
            pid = int((container.attrs.get("State") or {}).get("Pid") or 0)
        except (BackendError, docker.errors.APIError, ValueError):
            return None
        output: str | None = None
        if pid > 0:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                done = subprocess.run(
                    ["nsenter", "-t", str(pid), "-n", "ss", "-ltnH"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=False,
                )
                if done.returncode == 0:
                    output = done.stdout
        if output is None:
            with contextlib.suppress(docker.errors.APIError, OSError):
                code, raw = container.exec_run(["ss", "-ltnH"])
                if code == 0:
                    output = raw.decode(errors="replace")
        return None if output is None else parse_ss_backlog(output, port)

    def remove(self, container_id: str) -> None:
        # The endpoint's own teardown and the run's cleanup may race to remove a container
        # that just died; Docker's 409 "already in progress" then means it is going.
        try:
            self._container(container_id).remove(force=True)
        except (BackendError, docker.errors.NotFound):
            return
        except docker.errors.APIError as error:
            if error.status_code != 409:
                log.warning("removing %s failed: %s", container_id[:12], error)


def parse_ss_backlog(output: str, port: int) -> int | None:
    """The Send-Q (the backlog, for a listening socket) of the listener on ``port``."""
    for line in output.splitlines():
        parts = line.split()
        # State Recv-Q Send-Q Local:Port Peer:Port (ss -ltnH), State optional in old ss
        if parts and parts[0] == "LISTEN":
            parts = parts[1:]
        if len(parts) >= 3 and parts[0].isdigit() and parts[1].isdigit():
            local = parts[2]
            if local.rpartition(":")[2] == str(port):
                return int(parts[1])
    return None


@dataclass
class CloseResult:
    removed: tuple[str, ...] = ()
    left: tuple[str, ...] = ()


@dataclass
class RunContainers:
    """One run's containers (see the module docstring)."""

    identity: RunIdentity
    backend: DockerBackend
    phase: str = "setup"
    """What the run was doing (for the interrupted message): setup, image checks, bring-up,
    live checks."""
    started_ids: list[str] = field(default_factory=list)
    closed: bool = False
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _in_flight: int = 0

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Around one ``docker run``: refused once closing; counted while in flight."""
        with self._lock:
            if self.closed:
                raise BackendError("contract-test is stopping: no new container is started")
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def started(self, container_id: str) -> bool:
        """Record a started container; False when the run closed meanwhile (remove it)."""
        with self._lock:
            self.started_ids.append(container_id)
            return not self.closed

    def close(self, wait_s: float = IN_FLIGHT_WAIT_S) -> CloseResult:
        """Stop starting containers, then remove every container of this run (idempotent)."""
        with self._lock:
            self.closed = True
            deadline = time.monotonic() + wait_s
            while self._in_flight and time.monotonic() < deadline:
                self._lock.wait(timeout=0.1)
        ids = dict.fromkeys(self.started_ids)
        try:
            ids.update(dict.fromkeys(self.backend.find({LABEL_RUN: self.identity.run_id})))
        except Exception as error:  # the engine went away: remove what we know of
            log.warning("cannot list this run's containers: %s", error)
        removed: list[str] = []
        for container_id in ids:
            with contextlib.suppress(Exception):
                self.backend.stop(container_id, 0)
            with contextlib.suppress(Exception):
                self.backend.remove(container_id)
            removed.append(container_id)
        try:
            left = tuple(self.backend.find({LABEL_RUN: self.identity.run_id}))
        except Exception:
            left = ()
        gone = tuple(i for i in removed if i not in left)
        return CloseResult(removed=gone, left=left)


def sweep_stale(backend: ContractDocker, me: RunIdentity) -> list[str]:
    """Remove containers of earlier contract-test runs whose process is gone; their names."""
    swept: list[str] = []
    for container_id, name, labels in backend.labelled(LABEL_RUN):
        if not is_stale(labels, me):
            continue
        with contextlib.suppress(Exception):
            backend.stop(container_id, 0)
        with contextlib.suppress(Exception):
            backend.remove(container_id)
        log.info("removed %s, left by contract-test run %s", name, labels.get(LABEL_RUN))
        swept.append(name)
    return swept


class SuiteInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run; everything it started has been removed (or not:
    ``left``)."""

    def __init__(self, phase: str, result: CloseResult) -> None:
        super().__init__(phase)
        self.phase = phase
        self.removed = result.removed
        self.left = result.left


@contextlib.contextmanager
def deferred_signals(give_up_after: int = 3) -> Iterator[None]:
    """While cleaning up, Ctrl-C and SIGTERM do not cut it short (the third one does).

    Only in the main thread (the only one that may set handlers); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def note(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if count >= give_up_after:
            raise KeyboardInterrupt

    previous: dict[signal.Signals, Any] = {}
    for which in (signal.SIGINT, signal.SIGTERM):
        previous[which] = signal.signal(which, note)
    try:
        yield
    finally:
        for which, handler in previous.items():
            signal.signal(which, handler)


def names(ids: Sequence[str]) -> str:
    return ", ".join(i[:12] for i in ids)
