"""Container entry point of the text-classification image: ``serve`` execs gunicorn.

SageMaker starts the image as ``docker run IMAGE serve``. With the image's exec-form
ENTRYPOINT this script runs as PID 1 and ``os.execvp``s gunicorn, so gunicorn *is* PID 1 and
gets SIGTERM straight from ``docker stop`` / SageMaker: it stops accepting connections,
finishes in-flight requests (up to the graceful timeout) and exits 0.

Settings (environment):

``SAGEMAKER_BIND_TO_PORT``          port to listen on, all interfaces (default 8080)
``SAGEMAKER_MODEL_SERVER_WORKERS``  worker processes (default: CPUs available to the container)
``SAGEMAKER_MODEL_SERVER_TIMEOUT``  gunicorn worker timeout in seconds (default 60)
``SAGEMAKER_CONTAINER_LOG_LEVEL``   debug|info|warning|error|critical or 10..50 (default info)
``MODEL_SERVER_THREADS``            request threads per worker (default 2, so /ping is answered
                                    while an inference runs)
``OMP_NUM_THREADS``                 torch intra-op threads per worker (default: CPUs / workers)
``SM_MODEL_DIR``                    model directory (default /opt/ml/model, read-only)

Each worker loads its own copy of the model (after the fork: torch's thread pools do not
survive a fork), so memory grows with the worker count; on a GPU instance run one worker per
GPU (``SAGEMAKER_MODEL_SERVER_WORKERS``).

Any other first argument than ``serve`` prints the usage and exits 2.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROGRAM_DIR = Path(__file__).resolve().parent
USAGE = """\
usage: <image> serve

This is a SageMaker inference container. SageMaker (or smlocal) starts it as
`docker run IMAGE serve`, which runs the model server (gunicorn) on port 8080
(or $SAGEMAKER_BIND_TO_PORT) serving GET /ping and POST /invocations.
Training is not supported by this image."""

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: SageMaker allows 30 s between SIGTERM and SIGKILL; finish in-flight requests within that.
GRACEFUL_TIMEOUT = 25
#: Longer than any sane client pool's idle time, so the server never closes a connection a
#: client is about to reuse (which would surface as a reset on the client's side).
KEEP_ALIVE = 75


class SettingsError(ValueError):
    """An environment variable has a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    """Model server settings, from the environment."""

    port: int
    workers: int
    threads: int
    timeout: int
    log_level: str


def available_cpus() -> int:
    """CPUs this container may use: affinity mask, capped by a cgroup CPU quota if any."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota: float | None = None
    try:  # cgroup v2: "max 100000" or "150000 100000"
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if limit != "max":
            quota = int(limit) / int(period)
    except (OSError, ValueError):
        try:  # cgroup v1
            limit_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            if limit_us > 0 and period_us > 0:
                quota = limit_us / period_us
        except (OSError, ValueError):
            pass
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def _int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range {low}..{high}")
    return value


def _log_level(raw: str | None) -> str:
    """Map SAGEMAKER_CONTAINER_LOG_LEVEL (a name or a logging number) to a gunicorn level."""
    if raw is None or not raw.strip():
        return "info"
    value = raw.strip().lower()
    if value.isdigit():  # the SageMaker toolkits pass logging numbers, e.g. 20
        number = int(value)
        return LOG_LEVELS[min(max(number // 10 - 1, 0), len(LOG_LEVELS) - 1)]
    if value == "warn":
        return "warning"
    if value in LOG_LEVELS:
        return value
    raise SettingsError(
        f"SAGEMAKER_CONTAINER_LOG_LEVEL={raw!r}; use one of {', '.join(LOG_LEVELS)} or 10..50"
    )


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Read and validate the settings; raise :class:`SettingsError` on a bad value."""
    return Settings(
        port=_int_setting(env, "SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535),
        workers=_int_setting(env, "SAGEMAKER_MODEL_SERVER_WORKERS", available_cpus(), 1, 1024),
        threads=_int_setting(env, "MODEL_SERVER_THREADS", 2, 1, 1024),
        timeout=_int_setting(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, 1, 86_400),
        log_level=_log_level(env.get("SAGEMAKER_CONTAINER_LOG_LEVEL")),
    )


def gunicorn_argv(settings: Settings) -> list[str]:
    """The gunicorn command line for ``settings``."""
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"0.0.0.0:{settings.port}",
        "--workers",
        str(settings.workers),
        "--worker-class",
        "gthread",  # threads + keep-alive; sync workers close every connection
        "--threads",
        str(settings.threads),
        "--timeout",
        str(settings.timeout),
        "--graceful-timeout",
        str(GRACEFUL_TIMEOUT),
        "--keep-alive",
        str(KEEP_ALIVE),
        "--log-level",
        settings.log_level,
        "--error-logfile",
        "-",
        "--no-control-socket",
        "--chdir",
        str(PROGRAM_DIR),
    ]
    if settings.log_level in ("debug", "info"):
        argv += ["--access-logfile", "-", "--access-logformat", '%(h)s "%(r)s" %(s)s %(B)s %(M)sms']
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        argv += ["--worker-tmp-dir", "/dev/shm"]  # heartbeat files off the overlay filesystem
    argv.append("app:create_app()")
    return argv


def main(argv: list[str]) -> int:
    """Validate the command and settings, then exec gunicorn (returns only on errors)."""
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(argv) != 2 or argv[1] != "serve":
        got = " ".join(argv[1:]) or "(no arguments)"
        print(f"error: unsupported command: {got}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        settings = settings_from_env(os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Share the CPUs between the workers instead of letting every worker's torch start one
    # intra-op thread per CPU (N workers x N threads thrash on a small instance).
    torch_threads = str(max(1, available_cpus() // settings.workers))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, torch_threads)
    print(
        f"serve: starting gunicorn on 0.0.0.0:{settings.port} with {settings.workers} "
        f"worker(s) x {settings.threads} thread(s), timeout {settings.timeout}s, "
        f"log level {settings.log_level}, {os.environ['OMP_NUM_THREADS']} torch thread(s)",
        flush=True,
    )
    command = gunicorn_argv(settings)
    os.execvp(command[0], command)
    return 1  # unreachable: execvp replaces the process or raises


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
