"""``--find-max``: step the user count up until latency rises or errors appear.

Step 1 runs one user: its p95 is the unloaded latency, and the bound is ``factor`` (2) times
that unless an SLO is given. Each further step runs more users (1, 2, 4, 8, ... by default)
for ``step_s`` seconds; the search stops at the first step whose p95 exceeds the bound or that
has any error, or after ``max_steps``. MAX_RPS is the highest Requests/s (Locust's own
figure) among the steps that kept the bound without errors — AWS's "load at which latency
rises or errors appear", approached from below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smlocal.loadtests.stats import StepStats

__all__ = ["FindMaxResult", "FindMaxSettings", "default_user_steps", "find_max"]


def default_user_steps(max_steps: int) -> tuple[int, ...]:
    """1, 2, 4, 8, ...: doubling reaches a saturating load in few, short steps."""
    return tuple(2**i for i in range(max_steps))


@dataclass(frozen=True)
class FindMaxSettings:
    step_s: float = 10.0
    max_steps: int = 8
    latency_slo_ms: float | None = None
    factor: float = 2.0
    user_steps: tuple[int, ...] = ()

    def users(self) -> Sequence[int]:
        return (self.user_steps or default_user_steps(self.max_steps))[: self.max_steps]


@dataclass(frozen=True)
class FindMaxResult:
    steps: tuple[StepStats, ...]
    latency_bound_ms: float | None
    baseline_p95_ms: float | None
    best: StepStats | None
    stop_reason: str

    @property
    def max_rps(self) -> float | None:
        return self.best.rps if self.best is not None else None


def _breach(step: StepStats, bound: float) -> str | None:
    if step.requests == 0:
        return f"no request completed at {step.users} users"
    if step.failures:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(step.errors.items()))
        return f"errors at {step.users} users: {kinds or step.failures}"
    if step.p95_ms is not None and step.p95_ms > bound:
        return f"p95 {step.p95_ms:g} ms > bound {bound:g} ms at {step.users} users"
    return None


def find_max(run_step: Callable[[int], StepStats], settings: FindMaxSettings) -> FindMaxResult:
    """Run steps through ``run_step(users)`` until the bound breaks (see module docstring)."""
    steps: list[StepStats] = []
    best: StepStats | None = None
    bound: float | None = settings.latency_slo_ms
    baseline: float | None = None
    reason = f"reached the last step ({settings.max_steps} steps) without breaking the bound"
    for users in settings.users():
        step = run_step(users)
        steps.append(step)
        if baseline is None:
            baseline = step.p95_ms
            if bound is None and baseline is not None:
                bound = settings.factor * baseline
        breach = _breach(step, bound if bound is not None else float("inf"))
        if breach is not None:
            reason = breach
            break
        if best is None or step.rps > best.rps:
            best = step
    return FindMaxResult(tuple(steps), bound, baseline, best, reason)
