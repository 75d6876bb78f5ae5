"""Background processes: start one in a session of its own, read the tail of its log.

``smlocal server --detach`` (and ``serve --detach`` when no service runs) start the service
this way (:func:`smlocal.emulator.service.process.start_detached_service`); a start that fails
shows this run's last log lines, not only the log's path.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["log_tail", "spawn"]

_POLL_S = 0.1
_TAIL_LINES = 15


def spawn(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own (Ctrl-C of the caller does not reach it), its
    output appended to ``log_path``."""
    with log_path.open("ab") as log_out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_out,
            stderr=log_out,
            start_new_session=True,
            env=env,
        )


def log_tail(log_path: Path, since: int, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` lines written to ``log_path`` after byte ``since`` (this run's)."""
    with log_path.open("rb") as handle:
        handle.seek(since)
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])
