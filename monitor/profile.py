"""One column's profile: its values' types, completeness, and Model Monitor's statistics.

A column arrives as a NumPy bytes array (``dtype='S'``) of the values' text; an empty value is
missing. Each present value is Integral, Fractional or String by the analyzer's (Deequ's) rules:
a number without ``.``/exponent is Integral, another finite number Fractional, anything else
(``nan``, ``inf``, ``true``, text) String; a column with any String value is String, else
Fractional if any value is, else Integral (Deequ's ``DataTypeHistogram.determineType``).

Numeric statistics use Apache DataSketches' KLL sketch (k = 2048, as the analyzer's); the
10 equal-width buckets from min to max are counted from the sketch, and the sketch's retained
items are written level by level (level *i* weighs 2**i), the layout of the analyzer's
``sketch.data``. Everything is vectorised: the column is converted once, the sketch updated with
the whole array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRACTIONAL",
    "INTEGRAL",
    "KLL_K",
    "NUM_BUCKETS",
    "STRING",
    "UNKNOWN",
    "ColumnProfile",
    "FeatureStats",
    "profile_column",
]

INTEGRAL, FRACTIONAL, STRING, UNKNOWN = "Integral", "Fractional", "String", "Unknown"
KLL_K = 2048
KLL_C = 0.64  # the analyzer's (Deequ's) shrinking factor, written as it writes it
NUM_BUCKETS = 10  # "By default, the distribution is materialized in 10 buckets."
# Deequ profiles a categorical histogram only up to this many distinct values.
CATEGORICAL_MAX_DISTINCT = 120

_NON_INTEGRAL_BYTES = np.frombuffer(b".eE", dtype=np.uint8)


@dataclass
class FeatureStats:
    """One entry of ``statistics.json``'s ``features``."""

    name: str
    inferred_type: str
    num_present: int
    num_missing: int
    mean: float = 0.0
    total: float = 0.0
    std_dev: float = 0.0
    minimum: float = 0.0
    maximum: float = 0.0
    buckets: list[tuple[float, float, float]] = field(default_factory=list)
    sketch_levels: list[list[float]] = field(default_factory=list)
    distinct_count: float = 0.0
    categories: list[tuple[str, float]] | None = None

    @property
    def is_numeric(self) -> bool:
        return self.inferred_type in (INTEGRAL, FRACTIONAL)

    def weighted_sample(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The sketch's items and their weights (2**level); the buckets if there is no sketch."""
        if any(self.sketch_levels):
            items = np.concatenate([np.asarray(lv, dtype=np.float64) for lv in self.sketch_levels])
            weights = np.concatenate(
                [np.full(len(lv), 2.0**i) for i, lv in enumerate(self.sketch_levels)]
            )
            return items, weights
        if self.buckets:
            return (
                np.array([b[1] for b in self.buckets], dtype=np.float64),
                np.array([b[2] for b in self.buckets], dtype=np.float64),
            )
        return np.empty(0), np.empty(0)


@dataclass
class ColumnProfile:
    """What a column held: the counts per type (for data_type_check) and its statistics."""

    stats: FeatureStats
    integral: int
    fractional: int
    string: int
    numbers: npt.NDArray[np.float64] | None = None
    texts: npt.NDArray[np.bytes_] | None = None

    @property
    def present(self) -> int:
        return self.integral + self.fractional + self.string


def profile_column(
    name: str, values: npt.NDArray[np.bytes_], as_type: str | None = None
) -> ColumnProfile:
    """Profile ``values``; ``as_type`` (the baseline's type) decides the statistics' kind."""
    stripped = np.char.strip(values) if values.size else values
    missing = stripped == b""
    present = stripped[~missing]
    numbers, numeric_mask, integral_mask = _classify(present)
    n_int = int(integral_mask.sum())
    n_num = int(numeric_mask.sum())
    n_str = int(present.size - n_num)
    inferred = _determine_type(n_int, n_num - n_int, n_str)
    kind = as_type or inferred
    num_missing = int(missing.sum())
    if kind in (INTEGRAL, FRACTIONAL):
        nums = numbers[numeric_mask]
        stats = numeric_stats(name, kind, nums, num_missing + n_str)
        # Values of the wrong type count as missing for the statistics (num_present is what
        # the distribution describes); data_type_check sees them through the type counts.
        return ColumnProfile(stats, n_int, n_num - n_int, n_str, numbers=nums)
    stats = string_stats(name, kind, present, num_missing)
    return ColumnProfile(stats, n_int, n_num - n_int, n_str, texts=present)


def _classify(
    present: npt.NDArray[np.bytes_],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Each value as a float (NaN if not a finite number), numeric and integral masks."""
    if present.size == 0:
        empty = np.zeros(0, dtype=bool)
        return np.empty(0), empty, empty
    try:
        numbers = present.astype(np.float64)
    except ValueError:
        numbers = np.array([_to_float(v) for v in present.tolist()], dtype=np.float64)
    numeric = np.isfinite(numbers)
    width = present.dtype.itemsize
    raw = np.ascontiguousarray(present).view(np.uint8).reshape(present.size, width)
    has_point = np.isin(raw, _NON_INTEGRAL_BYTES).any(axis=1)
    integral = numeric & ~has_point
    return numbers, numeric, integral


def _to_float(value: bytes) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan


def _determine_type(integral: int, fractional: int, string: int) -> str:
    if string:
        return STRING
    if fractional:
        return FRACTIONAL
    if integral:
        return INTEGRAL
    return UNKNOWN


def numeric_stats(
    name: str, kind: str, nums: npt.NDArray[np.float64], num_missing: int
) -> FeatureStats:
    """Numeric statistics with a KLL sketch and its 10 equal-width buckets."""
    from datasketches import kll_doubles_sketch

    stats = FeatureStats(name, kind, int(nums.size), num_missing)
    if nums.size == 0:
        return stats
    sketch = kll_doubles_sketch(KLL_K)
    sketch.update(nums)
    with np.errstate(over="ignore", invalid="ignore"):  # a sum past 1.8e308 is written "Infinity"
        stats.total = float(nums.sum())
    stats.mean = stats.total / nums.size
    scale = float(np.abs(nums).max())
    # Population std (as the analyzer writes it), scaled so squares of huge values stay finite.
    stats.std_dev = float((nums / scale).std() * scale) if scale > 0 else 0.0
    stats.minimum, stats.maximum = float(nums.min()), float(nums.max())
    stats.buckets = _buckets(sketch, stats.minimum, stats.maximum, nums.size)
    levels: dict[int, list[float]] = {}
    for item, weight in sketch:
        levels.setdefault(int(weight).bit_length() - 1, []).append(float(item))
    stats.sketch_levels = [levels.get(i, []) for i in range(max(levels) + 1)]
    return stats


def _buckets(sketch: object, lo: float, hi: float, n: int) -> list[tuple[float, float, float]]:
    width = (hi - lo) / NUM_BUCKETS
    edges = [lo + i * width for i in range(NUM_BUCKETS + 1)]
    edges[-1] = hi
    if hi == lo:
        return [(lo, hi, float(n) if i == 0 else 0.0) for i in range(NUM_BUCKETS)]
    # [lower, upper) except the last, which holds the maximum: get_pmf's exclusive intervals.
    pmf = sketch.get_pmf(edges[1:-1], inclusive=False)  # type: ignore[attr-defined]
    counts = [round(p * n) for p in pmf]
    return [(edges[i], edges[i + 1], float(counts[i])) for i in range(NUM_BUCKETS)]


def string_stats(
    name: str, kind: str, present: npt.NDArray[np.bytes_], num_missing: int
) -> FeatureStats:
    """String statistics: distinct count and, for low cardinality, the value counts."""
    stats = FeatureStats(name, kind, int(present.size), num_missing)
    if present.size == 0:
        return stats
    values, counts = np.unique(present, return_counts=True)
    stats.distinct_count = float(values.size)
    if values.size <= CATEGORICAL_MAX_DISTINCT:
        order = np.argsort(-counts, kind="stable")
        stats.categories = [(values[i].decode("utf-8", "replace"), float(counts[i])) for i in order]
    return stats
