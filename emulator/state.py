"""Where smlocal keeps what outlives one command: the service's state, logs, the model cache.

Everything lives below ``$SMLOCAL_HOME`` (default ``~/.smlocal``): ``service/`` is the local
service's (its SQLite state, lock, id and ``server.json`` saying where it listens: see
:mod:`smlocal.emulator.service.process`); ``logs/NAME.log`` keeps each endpoint's container
output (``smlocal logs``); ``cache/`` holds extracted model artifacts; ``contracts/`` the
contract-test ledger.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from smlocal.emulator.errors import ConfigError

__all__ = ["StateDir", "identity_alive", "process_alive", "process_identity"]

# SageMaker's endpoint-name rule: also what keeps a name from leaving logs/ ("../x", "a/b").
_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


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


def process_identity(pid: int) -> str | None:
    """``PID:START`` (the start time in clock ticks since boot, from /proc): names one process
    for good, where a bare pid may be reused. None when it does not run; ``PID:?`` without
    /proc (the pid alone is all there is)."""
    if not process_alive(pid):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return f"{pid}:?"
    fields = stat.rpartition(")")[2].split()
    return f"{pid}:{fields[19]}" if len(fields) > 19 else f"{pid}:?"


def identity_alive(identity: str) -> bool:
    """Whether the process :func:`process_identity` named is still that one, running."""
    pid, _, _start = identity.partition(":")
    return pid.isdigit() and process_identity(int(pid)) == identity


class StateDir:
    def __init__(self, root: Path | None = None) -> None:
        env_root = os.environ.get("SMLOCAL_HOME")
        self.root = root or (Path(env_root) if env_root else Path.home() / ".smlocal")

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def log_path(self, name: str) -> Path:
        """Where endpoint ``name``'s log is (ConfigError for what is no endpoint name)."""
        if not _ENDPOINT_NAME.fullmatch(name):
            raise ConfigError(
                f"{name!r} is not an endpoint name (1-63 letters, digits and hyphens, "
                "starting and ending with a letter or digit)"
            )
        return self.root / "logs" / f"{name}.log"

    def private_dir(self, *parts: str) -> Path:
        """``ROOT/parts...``, made if need be, and it and every folder made for it readable by
        the owner only (0700): logs, the service's records and the ledger hold data (container
        output, environments, tags). A root smlocal did not make keeps its mode (it may be a
        folder the user shares on purpose); what smlocal keeps in it does not."""
        if not self.root.exists():
            self.root.mkdir(parents=True, mode=0o700)
            _owner_only(self.root, 0o700)  # mkdir's mode is cut by the umask
        path = self.root
        for part in parts:
            path = path / part
            path.mkdir(exist_ok=True, mode=0o700)
            _owner_only(path, 0o700)
        return path

    def log_file(self, name: str) -> Path:
        """``logs/NAME.log``, made if need be, readable by the owner only (container output
        can hold data)."""
        path = self.log_path(name)
        self.private_dir(path.parent.name)
        if not path.exists():
            path.touch(mode=0o600)
        _owner_only(path, 0o600)
        return path


def _owner_only(path: Path, mode: int) -> None:
    """Give ``path`` ``mode`` when group or others could read it (only if it is ours)."""
    with contextlib.suppress(OSError):
        found = path.stat()
        if found.st_uid == os.getuid() and stat.S_IMODE(found.st_mode) & 0o077:
            path.chmod(mode)
