"""Where smlocal keeps what outlives one command: running endpoints, logs, the model cache.

Everything lives below ``$SMLOCAL_HOME`` (default ``~/.smlocal``):
``run/NAME.json`` describes a serving process (pid, URL, status) so that ``smlocal ps``,
``smlocal stop`` and ``smlocal invoke`` find it; ``logs/NAME.log`` keeps container output;
``cache/`` holds extracted model artifacts. Records of processes that died are ignored and
removed when read.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["RunRecord", "StateDir", "process_alive", "stop_serving_process"]


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie (killed, not yet reaped: common for detached children
    whose parent has gone) is not running; /proc tells where it exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal check is all there is
    # The state field follows the command name in parentheses, which may contain spaces.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@dataclass
class RunRecord:
    name: str
    pid: int
    url: str
    port: int
    status: str
    image: str
    log_file: str
    started_at: float
    failure_reason: str = ""
    failure_logs: str = ""
    """The failed container's last log lines, so a detached start can show them."""

    @property
    def alive(self) -> bool:
        return process_alive(self.pid)


class StateDir:
    def __init__(self, root: Path | None = None) -> None:
        env_root = os.environ.get("SMLOCAL_HOME")
        self.root = root or (Path(env_root) if env_root else Path.home() / ".smlocal")

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def log_file(self, name: str) -> Path:
        """``logs/NAME.log``, readable by the owner only (container output can hold data)."""
        path = self.root / "logs" / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            path.touch(mode=0o600)
        return path

    def _run_file(self, name: str) -> Path:
        return self.root / "run" / f"{name}.json"

    def write(self, record: RunRecord) -> None:
        path = self._run_file(record.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(asdict(record), indent=2))
        temp.replace(path)

    def read(self, name: str, *, include_dead: bool = False) -> RunRecord | None:
        """The record of endpoint ``name``; a dead process's record is dropped unless asked for."""
        path = self._run_file(name)
        try:
            record = RunRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if include_dead:
            return record
        if not record.alive:
            path.unlink(missing_ok=True)
            return None
        return record

    def remove(self, name: str, pid: int | None = None) -> None:
        current = self.read(name)
        if current is None or pid is None or current.pid == pid:
            self._run_file(name).unlink(missing_ok=True)

    def all(self) -> list[RunRecord]:
        folder = self.root / "run"
        if not folder.is_dir():
            return []
        records = [self.read(path.stem) for path in sorted(folder.glob("*.json"))]
        return [r for r in records if r is not None]


def stop_serving_process(record: RunRecord, timeout_s: float, poll_s: float = 0.1) -> bool:
    """SIGTERM the serving process of ``record`` and wait; True once it has exited.

    The serving process stops its containers on SIGTERM (SIGTERM, then SIGKILL after the
    grace period), so waiting for it means waiting for them.
    """
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while record.alive and time.monotonic() < deadline:
        time.sleep(poll_s)
    return not record.alive
