"""The drift distances (Deequ's, see monitor/checks.py) and categorical drift."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from smlocal.monitor.checks import C_ALPHA, categorical_distance, numerical_distance
from smlocal.monitor.profile import FeatureStats, numeric_stats
from tests.monitor_data import write_capture
from tests.unit.test_monitor_run import HOUR, _kinds, _rows, _run


def _stats(values: np.ndarray) -> FeatureStats:
    return numeric_stats("x", "Fractional", values.astype(np.float64), 0)


def test_simple_is_the_cdf_linf_and_robust_subtracts_the_ks_allowance() -> None:
    base = _stats(np.arange(100))  # 0..99
    moved = _stats(np.arange(20, 120))  # 20..119: the CDFs differ by 0.2 at most
    assert numerical_distance(base, moved, "Simple") == pytest.approx(0.2)
    robust = numerical_distance(base, moved, "Robust")
    assert robust == pytest.approx(max(0.0, 0.2 - C_ALPHA * math.sqrt(200 / 10_000)))
    assert numerical_distance(base, base, "Simple") == 0.0
    assert numerical_distance(base, FeatureStats("x", "Fractional", 0, 5), "Simple") is None


def test_the_analyzers_compacted_levels_weigh_two_to_the_level() -> None:
    ours = FeatureStats("x", "Fractional", 4, 0, sketch_levels=[[1.0, 2.0], [], [3.0]])
    items, weights = ours.weighted_sample()
    assert list(zip(items, weights, strict=True)) == [(1.0, 1.0), (2.0, 1.0), (3.0, 4.0)]
    flat = FeatureStats("x", "Fractional", 6, 0, sketch_levels=[[1.0, 2.0, 3, 3, 3, 3]])
    assert numerical_distance(ours, flat, "Simple") == pytest.approx(0.0)


def test_categorical_distance_is_the_linf_of_frequencies() -> None:
    a = FeatureStats("c", "String", 100, 0, categories=[("x", 50.0), ("y", 50.0)])
    b = FeatureStats("c", "String", 100, 0, categories=[("x", 80.0), ("z", 20.0)])
    assert categorical_distance(a, b, "Simple") == pytest.approx(0.5)
    assert categorical_distance(a, b, "Robust") == pytest.approx(0.5 - C_ALPHA * math.sqrt(0.02))


def test_shifted_category_proportions_drift_without_unknown_values(tmp_path: Path) -> None:
    from smlocal.monitor import run_baseline

    train = tmp_path / "t.csv"
    train.write_text("\n".join(",".join(r) for r in _rows(20_000, seed=1)) + "\n")
    run_baseline(train, tmp_path / "b")
    rows = _rows(2000, seed=2)
    rng = np.random.default_rng(3)
    for row in rows:
        row[5] = str(rng.choice(["a", "b", "c"], p=[0.2, 0.3, 0.5]))
    write_capture(tmp_path / "cap", "ep", rows, HOUR)
    assert _kinds(_run(tmp_path / "cap", tmp_path / "b", tmp_path / "o")) == {
        ("_c5", "baseline_drift_check")
    }


def test_a_simple_comparison_method_in_constraints_is_used(tmp_path: Path) -> None:
    from smlocal.monitor import run_baseline

    train = tmp_path / "t.csv"
    train.write_text("\n".join(",".join(r) for r in _rows(5000, seed=1)) + "\n")
    run_baseline(train, tmp_path / "b")
    path = tmp_path / "b" / "constraints.json"
    body = json.loads(path.read_text())
    body["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Simple"
    body["monitoring_config"]["distribution_constraints"]["comparison_threshold"] = 0.001
    path.write_text(json.dumps(body))
    write_capture(tmp_path / "cap", "ep", _rows(200, seed=2), HOUR)
    result = _run(tmp_path / "cap", tmp_path / "b", tmp_path / "o")
    # Without the sample-size allowance, sampling noise alone exceeds a tiny threshold; the
    # String feature keeps categorical_comparison_threshold (absent: 0.1).
    assert _kinds(result) == {(f"_c{i}", "baseline_drift_check") for i in range(5)}
