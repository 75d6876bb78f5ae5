"""``--find-max``: step the user count up until latency rises or errors appear.

Step 1 runs one user: its p95 is the unloaded latency, and the bound is ``factor`` (2) times
that, but at least ``noise_floor_ms`` (10) above it, unless an SLO is given: on a busy laptop a
4 ms p95 turns 10 ms for no reason of the container's, and doubling alone would stop the
search there. Each further step runs more users (1, 2, 4, 8, ... by default) for ``step_s``
seconds; the search stops at the first step that has any error, or whose p95 exceeds the bound
twice in a row (the step is run once more before it counts: one noisy step is not the
container's limit), or after ``max_steps``. MAX_RPS is the highest Requests/s (Locust's own
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
    noise_floor_ms: float = 10.0
    confirm_latency_breach: bool = True
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
                bound = max(settings.factor * baseline, baseline + settings.noise_floor_ms)
        limit = bound if bound is not None else float("inf")
        breach = _breach(step, limit)
        latency_only = step.requests > 0 and not step.failures
        if breach is not None and latency_only and settings.confirm_latency_breach:
            step = run_step(users)  # once more: one noisy step is not the container's limit
            steps.append(step)
            breach = _breach(step, limit)
            if breach is not None and step.requests > 0 and not step.failures:
                breach += " (twice in a row)"
        if breach is not None:
            reason = breach
            break
        if best is None or step.rps > best.rps:
            best = step
    return FindMaxResult(tuple(steps), bound, baseline, best, reason)
