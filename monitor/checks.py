"""The six constraint checks of ``constraint_violations.json``, and the drift distances.

Distances are Deequ's (``com.amazon.deequ.analyzers.Distance``, the library the analyzer is
built with): for numbers the L-infinity distance between the two KLL sketches' CDFs, taken at
every item either sketch retains; for categories the L-infinity distance between the value
frequencies. ``comparison_method`` picks Deequ's two variants: **Simple** is that distance;
**Robust** subtracts the two-sample Kolmogorov-Smirnov allowance for the sample sizes,
``max(0, d - c_alpha * sqrt((n + m) / (n * m)))`` with Deequ's default ``c_alpha = 1.8``
(alpha = 0.003), so a small window does not read as drift. AWS does not document which
formula each name means; this mapping is smlocal's choice (README, conformance choices).

A check's value follows the analyzer's texts: ``Value: <x> does not meet the constraint
requirement! `` (the real violations file's wording) with x the fraction that conformed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from smlocal.monitor.files import Baseline, FeatureConstraint, Violation
from smlocal.monitor.profile import FRACTIONAL, INTEGRAL, STRING, ColumnProfile, FeatureStats

__all__ = [
    "C_ALPHA",
    "Evaluation",
    "categorical_distance",
    "evaluate",
    "numerical_distance",
]

C_ALPHA = 1.8  # Deequ's default for the Robust correction (alpha = 0.003)

DATA_TYPE = "data_type_check"
COMPLETENESS = "completeness_check"
DRIFT = "baseline_drift_check"
MISSING_COLUMN = "missing_column_check"
EXTRA_COLUMN = "extra_column_check"
CATEGORICAL = "categorical_values_check"


@dataclass
class Evaluation:
    violations: list[Violation] = field(default_factory=list)
    drift: dict[str, float] = field(default_factory=dict)  # feature → distance
    completeness: dict[str, float] = field(default_factory=dict)


def _requirement(value: float) -> str:
    return f"Value: {value!r} does not meet the constraint requirement! "


def _linf_sizes(linf: float, n: float, m: float, method: str) -> float:
    if method == "Simple" or n <= 0 or m <= 0:
        return linf
    return max(0.0, linf - C_ALPHA * math.sqrt((n + m) / (n * m)))


def _cdf(
    items: npt.NDArray[np.float64], weights: npt.NDArray[np.float64], at: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], float]:
    order = np.argsort(items, kind="stable")
    sorted_items, cum = items[order], np.cumsum(weights[order])
    total = float(cum[-1])
    idx = np.searchsorted(sorted_items, at, side="right")
    ranks = np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0.0)
    return ranks / total, total


def numerical_distance(base: FeatureStats, current: FeatureStats, method: str) -> float | None:
    """Deequ's KLL distance (Simple or Robust); None when either side has no distribution."""
    b_items, b_weights = base.weighted_sample()
    c_items, c_weights = current.weighted_sample()
    if b_items.size == 0 or c_items.size == 0:
        return None
    keys = np.union1d(b_items, c_items)
    cdf_b, n = _cdf(b_items, b_weights, keys)
    cdf_c, m = _cdf(c_items, c_weights, keys)
    return _linf_sizes(float(np.max(np.abs(cdf_b - cdf_c))), n, m, method)


def categorical_distance(base: FeatureStats, current: FeatureStats, method: str) -> float | None:
    if not base.categories or not current.categories:
        return None
    b, c = dict(base.categories), dict(current.categories)
    n, m = sum(b.values()), sum(c.values())
    if n <= 0 or m <= 0:
        return None
    linf = max(abs(b.get(k, 0.0) / n - c.get(k, 0.0) / m) for k in b.keys() | c.keys())
    return _linf_sizes(linf, n, m, method)


def _conforming(kind: str, profile: ColumnProfile) -> float | None:
    if profile.present == 0:
        return None
    if kind == INTEGRAL:
        good = profile.integral
    elif kind == FRACTIONAL:
        good = profile.integral + profile.fractional
    else:  # String (or Unknown) accepts any value
        good = profile.present
    return good / profile.present


def evaluate(
    baseline: Baseline, current: dict[str, ColumnProfile], names: tuple[str, ...]
) -> Evaluation:
    """Every check of every baseline feature against the window's column profiles."""
    result = Evaluation()
    known = {f.name for f in baseline.features}
    if not baseline.config.evaluate_constraints:
        return result
    missing = [f for f in baseline.features if f.name not in current]
    extra = [n for n in names if n not in known]
    for f in missing:
        result.violations.append(
            Violation(
                f.name,
                MISSING_COLUMN,
                "There are missing columns in current dataset. Number of columns in current "
                f"dataset: {len(names)}, Number of columns in baseline constraints: "
                f"{len(baseline.features)}",
            )
        )
    for name in extra:
        result.violations.append(
            Violation(
                name,
                EXTRA_COLUMN,
                "There are extra columns in current dataset. Number of columns in current "
                f"dataset: {len(names)}, Number of columns in baseline constraints: "
                f"{len(baseline.features)}",
            )
        )
    for f in baseline.features:
        if f.name in current and f.config.evaluate_constraints:
            _feature_checks(baseline, f, current[f.name], result)
    return result


def _feature_checks(
    baseline: Baseline, f: FeatureConstraint, profile: ColumnProfile, result: Evaluation
) -> None:
    stats = profile.stats
    total = stats.num_present + stats.num_missing
    completeness = (profile.present / total) if total else 0.0
    result.completeness[f.name] = completeness
    cfg = f.config
    conforming = _conforming(f.inferred_type, profile)
    if conforming is not None and conforming < cfg.datatype_check_threshold:
        result.violations.append(Violation(f.name, DATA_TYPE, _requirement(conforming), conforming))
    if f.completeness is not None and completeness < f.completeness:
        result.violations.append(
            Violation(f.name, COMPLETENESS, _requirement(completeness), completeness)
        )
    if f.domains is not None and f.inferred_type == STRING and profile.texts is not None:
        texts = profile.texts
        if texts.size:
            domain = np.array([d.encode() for d in f.domains], dtype=np.bytes_)
            inside = float(np.isin(texts, domain).mean())
            if inside < cfg.domain_content_threshold:
                result.violations.append(
                    Violation(f.name, CATEGORICAL, _requirement(inside), inside)
                )
    base = baseline.statistics.get(f.name)
    if base is None or not cfg.perform_comparison:
        return
    if stats.is_numeric:
        distance = numerical_distance(base, stats, cfg.comparison_method)
        threshold = cfg.comparison_threshold
    else:
        distance = categorical_distance(base, stats, cfg.comparison_method)
        threshold = cfg.categorical_comparison_threshold
    if distance is None:
        return
    result.drift[f.name] = distance
    if distance > threshold:
        result.violations.append(
            Violation(
                f.name,
                DRIFT,
                f"Baseline drift distance: {distance!r} exceeds threshold: {threshold!r}",
                distance,
            )
        )
