"""``serve --detach``: the serving process in the background, and the wait for its verdict.

:func:`start_detached` writes the spec for a child process (``python -m
smlocal.emulator.detach FILE``, this module's own entry point: the child needs the emulator,
not the CLI), starts it in a new session with its output in the endpoint's log file, and
waits until its run record says InService or Failed, or the child exits. A failure raises
:class:`EndpointFailedError` carrying the reason, the container's exit code and its last log
lines, so a detached start explains itself as a foreground one does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smlocal.emulator.errors import ConfigError, EndpointFailedError
from smlocal.emulator.spec import EndpointSpec
from smlocal.emulator.state import RunRecord, StateDir

__all__ = ["log_tail", "spawn", "start_detached"]

_POLL_S = 0.1
_TAIL_LINES = 15


def start_detached(
    spec: EndpointSpec,
    *,
    host: str,
    port: int,
    ping_interval_s: float,
    state: StateDir | None = None,
) -> RunRecord:
    """Start ``spec`` in a background process; its run record once InService."""
    state = state or StateDir()
    existing = state.read(spec.name)
    if existing is not None:
        raise ConfigError(
            f"endpoint {spec.name} is already running at {existing.url} (pid {existing.pid})"
        )
    request = {
        "spec": spec.model_dump(mode="json"),
        "host": host,
        "port": port,
        "ping_interval_s": ping_interval_s,
    }
    with tempfile.NamedTemporaryFile(
        "w", prefix="smlocal-detach-", suffix=".json", delete=False
    ) as handle:
        json.dump(request, handle)
    log_path = state.log_file(spec.name)
    since = log_path.stat().st_size
    child = spawn(
        [sys.executable, "-m", "smlocal.emulator.detach", handle.name],
        log_path,
        env={**os.environ, "SMLOCAL_HOME": str(state.root)},
    )
    return _wait_for_verdict(spec.name, child, state, log_path, since)


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


def _wait_for_verdict(
    name: str, child: subprocess.Popen[bytes], state: StateDir, log_path: Path, since: int
) -> RunRecord:
    while True:
        code = child.poll()
        record = state.read(name, include_dead=True)
        if record is not None and record.pid == child.pid:
            if record.status == "InService":
                return record
            if record.status == "Failed":
                child.wait(timeout=60)  # it stops its containers, then exits
                raise EndpointFailedError(
                    f"endpoint {name} failed: {record.failure_reason}; log: {record.log_file}",
                    logs=record.failure_logs,
                )
        if code is not None:
            error = ConfigError if code == ConfigError.exit_code else EndpointFailedError
            raise error(
                f"endpoint {name}: the serving process exited with code {code} before "
                f"InService; log: {log_path}\n" + log_tail(log_path, since)
            )
        time.sleep(_POLL_S)


class _QuietSink:
    """The child's container output already goes to the log file (the server writes it)."""

    def container_log(self, source: str, line: str) -> None:
        pass

    def status(self, endpoint: str, status: str, detail: str) -> None:
        print(f"{endpoint}: {status} {detail}", flush=True)


def _child_main(request_path: str) -> int:
    from smlocal.emulator.errors import SmlocalError
    from smlocal.emulator.server import serve_blocking

    path = Path(request_path)
    request = json.loads(path.read_text())
    path.unlink(missing_ok=True)
    spec = EndpointSpec.model_validate(request["spec"])
    try:
        result = serve_blocking(
            spec,
            _QuietSink(),
            host=request["host"],
            port=int(request["port"]),
            ping_interval_s=float(request["ping_interval_s"]),
        )
    except SmlocalError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return int(error.exit_code)
    return 1 if result.status == "Failed" else 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
