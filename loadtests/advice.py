"""Autoscaling advice from MAX_RPS, by AWS's sizing rule (reference §7).

Target tracking on ``SageMakerVariantInvocationsPerInstance`` (invocations per MINUTE per
instance): target = MAX_RPS x safety factor (0.5 to start) x 60. With a stated peak load,
the maximum instance count is the number that carries the peak at that target, and the
minimum the number that carries the base load (at least one instance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smlocal.loadtests.pricing import PRICE_DATE, PRICE_REGION, PRICE_SOURCE, price_per_hour

__all__ = ["DEFAULT_SAFETY_FACTOR", "ScalingAdvice", "advise"]

DEFAULT_SAFETY_FACTOR = 0.5
# AWS's target-tracking examples for SageMaker use these cooldowns.
SCALE_IN_COOLDOWN_S = 600
SCALE_OUT_COOLDOWN_S = 300


@dataclass(frozen=True)
class ScalingAdvice:
    max_rps: float
    safety_factor: float
    target_invocations_per_instance: float
    instance_type: str
    min_instances: int
    max_instances: int
    peak_rps: float | None
    base_rps: float | None
    price_per_instance_hour_usd: float | None
    price_note: str

    @property
    def cost_per_hour_usd(self) -> tuple[float, float] | None:
        price = self.price_per_instance_hour_usd
        if price is None:
            return None
        return round(price * self.min_instances, 4), round(price * self.max_instances, 4)


def _instances_for(rps: float | None, per_instance_rps: float) -> int:
    if not rps or per_instance_rps <= 0:
        return 1
    return max(1, math.ceil(rps / per_instance_rps))


def advise(
    max_rps: float,
    instance_type: str,
    *,
    safety_factor: float = DEFAULT_SAFETY_FACTOR,
    peak_rps: float | None = None,
    base_rps: float | None = None,
    price_override: float | None = None,
) -> ScalingAdvice:
    """The target-tracking value, instance bounds and cost for ``max_rps`` on one instance."""
    per_instance = max_rps * safety_factor
    price = price_override if price_override is not None else price_per_hour(instance_type)
    if price_override is not None:
        note = "given with --price-per-hour"
    elif price is not None:
        note = f"{PRICE_SOURCE}, {PRICE_REGION}, as of {PRICE_DATE}"
    else:
        note = f"{instance_type} is not in the price table; pass --price-per-hour"
    minimum = _instances_for(base_rps, per_instance)
    return ScalingAdvice(
        max_rps=max_rps,
        safety_factor=safety_factor,
        target_invocations_per_instance=round(per_instance * 60, 2),
        instance_type=instance_type,
        min_instances=minimum,
        max_instances=max(minimum, _instances_for(peak_rps, per_instance)),
        peak_rps=peak_rps,
        base_rps=base_rps,
        price_per_instance_hour_usd=price,
        price_note=note,
    )
