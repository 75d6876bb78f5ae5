"""Lifecycle checks, run last: memory stayed within the instance type, SIGTERM stops it in time.

SageMaker stops a container with SIGTERM and kills it 30 s later (scale-in, updates,
replacement); a server that ignores SIGTERM drops in-flight requests at the SIGKILL. The
container's memory limit is the instance type's; an OOM kill is reported as such, also of a
worker process the server outlived (the cgroup's OOM counter).
"""

from __future__ import annotations

import time

from smlocal.contracts.checks.base import LiveCheck
from smlocal.contracts.context import LiveContext
from smlocal.contracts.model import CheckInfo, Outcome, Severity

__all__ = ["LIFECYCLE_CHECKS"]

SIGKILL_EXIT = 137
# docker stop's own bookkeeping; an exit this close to the grace period is the SIGKILL.
_KILL_MARGIN_S = 0.5

OOM = CheckInfo(
    "lifecycle.oom",
    "stays within the instance type's memory",
    Severity.ERROR,
    "A container gets the instance type's memory; going over it is an OOM kill and the "
    "instance is replaced.",
)


def check_oom(context: LiveContext) -> Outcome:
    state = context.backend.state(context.container_id)
    limit = context.instance.memory_bytes
    if state.oom_killed:
        return Outcome.failed(
            f"the container was OOM-killed (limit {limit / 2**30:g} GiB, {context.instance.name})",
            [
                f"Docker reports OOMKilled, exit code {state.exit_code}",
                "fix: a smaller model or batch, fewer workers, or a larger instance type",
            ],
            memory_limit_bytes=limit,
        )
    kills = context.backend.oom_kills(context.container_id) if state.running else None
    if kills:
        return Outcome.failed(
            f"{kills} process(es) in the container were OOM-killed (limit {limit / 2**30:g} GiB, "
            f"{context.instance.name}); the server survived, the killed work did not",
            [
                f"the kernel's cgroup OOM counter says oom_kill {kills} (a worker, not PID 1)",
                "fix: a smaller model or batch, fewer workers, or a larger instance type",
            ],
            memory_limit_bytes=limit,
            oom_kills=kills,
        )
    return Outcome.passed(
        f"not OOM-killed within {limit / 2**30:g} GiB ({context.instance.name})",
        memory_limit_bytes=limit,
        oom_kills=kills or 0,
    )


SIGTERM = CheckInfo(
    "lifecycle.sigterm",
    "SIGTERM stops it within 30 s",
    Severity.ERROR,
    "SageMaker sends SIGTERM and then SIGKILL 30 s later; the server must exit on SIGTERM.",
)


def check_sigterm(context: LiveContext) -> Outcome:
    grace = context.stop_grace_s
    started = time.monotonic()
    context.backend.stop(context.container_id, timeout_s=grace)  # SIGTERM, SIGKILL after grace
    took = time.monotonic() - started
    state = context.backend.state(context.container_id)
    measured = {"stop_s": round(took, 2), "exit_code": state.exit_code, "grace_s": grace}
    if state.running or (state.exit_code == SIGKILL_EXIT and took >= grace - _KILL_MARGIN_S):
        logs = context.backend.logs(context.container_id, tail=3).strip().replace("\n", " | ")
        return Outcome.failed(
            f"still running {grace:g} s after SIGTERM; only SIGKILL stopped it",
            [
                f"docker stop took {took:.1f} s, exit code {state.exit_code} (137 = SIGKILL)",
                "the server (or the shell in front of it) ignores SIGTERM; use an exec-form "
                "ENTRYPOINT and let the server exit on SIGTERM",
                f"last log lines: {logs or '(none)'}",
            ],
            **measured,
        )
    return Outcome.passed(
        f"exited {took:.1f} s after SIGTERM with code {state.exit_code}", **measured
    )


LIFECYCLE_CHECKS = (LiveCheck(OOM, check_oom), LiveCheck(SIGTERM, check_sigterm))
