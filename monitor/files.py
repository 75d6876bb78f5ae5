"""Model Monitor's three files: ``statistics.json``, ``constraints.json``,
``constraint_violations.json`` — written in the analyzer's layout, read from ours or AWS's.

Writing follows the analyzer's real output (reference §E.3): ``"version" : 0.0``, counts as
floats, Jackson's ``"key" : value`` spacing, ``monitoring_config`` with the defaults the
analyzer suggests. Reading accepts what the analyzer and the SDK's samples contain: the doc
schema's ``monitoringConfigOverrides`` and the samples' ``string_constraints.
monitoring_config_overrides``, the older ``distribution_constraints`` form
(``enable_comparisons``), missing optional members. A file that is not that shape is a
:class:`MonitorInputError` naming the file and the member.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smlocal.monitor.errors import MonitorInputError
from smlocal.monitor.profile import FRACTIONAL, INTEGRAL, STRING, UNKNOWN, FeatureStats

__all__ = [
    "CONSTRAINTS_FILE",
    "DEFAULT_MONITORING_CONFIG",
    "STATISTICS_FILE",
    "VIOLATIONS_FILE",
    "Baseline",
    "FeatureConstraint",
    "MonitoringConfig",
    "Violation",
    "constraints_body",
    "dump",
    "read_baseline",
    "statistics_body",
    "violations_body",
]

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"

# The analyzer's suggested defaults, as its real constraints.json has them (reference §E.3).
DEFAULT_MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
    },
}
_TYPES = (INTEGRAL, FRACTIONAL, STRING, UNKNOWN)


@dataclass(frozen=True)
class MonitoringConfig:
    """``monitoring_config`` (with a feature's overrides applied)."""

    evaluate_constraints: bool = True
    emit_metrics: bool = True
    datatype_check_threshold: float = 1.0
    domain_content_threshold: float = 1.0
    perform_comparison: bool = True
    comparison_threshold: float = 0.1
    comparison_method: str = "Robust"
    categorical_comparison_threshold: float = 0.1
    categorical_drift_method: str = "LInfinity"

    def overridden(self, overrides: dict[str, Any], where: str) -> MonitoringConfig:
        return _config(overrides, where, base=self) if overrides else self


@dataclass(frozen=True)
class FeatureConstraint:
    name: str
    inferred_type: str
    completeness: float | None
    is_non_negative: bool | None
    domains: tuple[str, ...] | None
    config: MonitoringConfig


@dataclass(frozen=True)
class Baseline:
    """A baseline directory: its constraints and, if present, its statistics."""

    features: tuple[FeatureConstraint, ...]
    config: MonitoringConfig
    statistics: dict[str, FeatureStats] = field(default_factory=dict)
    item_count: int = 0


@dataclass(frozen=True)
class Violation:
    feature_name: str
    constraint_check_type: str
    description: str
    value: float | None = None  # the measured value (not written: AWS's file has none)


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity; the analyzer writes "NaN" as a string (reference §E.3).
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def dump(path: Path, body: dict[str, Any]) -> None:
    """Write ``body`` as the analyzer does (2-space indent, ``"key" : value``)."""
    text = json.dumps(
        _finite(body), indent=2, separators=(",", " : "), ensure_ascii=False, allow_nan=False
    )
    path.write_text(text + "\n", encoding="utf-8")


def statistics_body(item_count: int, features: list[FeatureStats]) -> dict[str, Any]:
    return {
        "version": 0.0,
        "dataset": {"item_count": item_count},
        "features": [_feature_statistics(f) for f in features],
    }


def _feature_statistics(f: FeatureStats) -> dict[str, Any]:
    common = {"num_present": f.num_present, "num_missing": f.num_missing}
    if f.is_numeric:
        numerical: dict[str, Any] = {"common": common}
        if f.num_present:
            numerical.update(
                mean=f.mean, sum=f.total, std_dev=f.std_dev, min=f.minimum, max=f.maximum
            )
            numerical["distribution"] = {
                "kll": {
                    "buckets": [
                        {"lower_bound": lo, "upper_bound": hi, "count": c}
                        for lo, hi, c in f.buckets
                    ],
                    "sketch": {
                        "parameters": {"c": 0.64, "k": 2048.0},
                        "data": f.sketch_levels,
                    },
                }
            }
        return {"name": f.name, "inferred_type": f.inferred_type, "numerical_statistics": numerical}
    strings: dict[str, Any] = {"common": common, "distinct_count": f.distinct_count}
    if f.categories is not None:
        strings["distribution"] = {
            "categorical": {"buckets": [{"value": v, "count": c} for v, c in f.categories]}
        }
    return {"name": f.name, "inferred_type": f.inferred_type, "string_statistics": strings}


def constraints_body(features: list[FeatureStats], domains: dict[str, list[str]]) -> dict[str, Any]:
    out = []
    for f in features:
        total = f.num_present + f.num_missing
        entry: dict[str, Any] = {
            "name": f.name,
            "inferred_type": f.inferred_type,
            "completeness": (f.num_present / total) if total else 0.0,
        }
        if f.is_numeric:
            entry["num_constraints"] = {"is_non_negative": f.num_present == 0 or f.minimum >= 0}
        elif f.name in domains:
            entry["string_constraints"] = {"domains": domains[f.name]}
        out.append(entry)
    return {"version": 0.0, "features": out, "monitoring_config": DEFAULT_MONITORING_CONFIG}


def violations_body(violations: list[Violation]) -> dict[str, Any]:
    return {
        "violations": [
            {
                "feature_name": v.feature_name,
                "constraint_check_type": v.constraint_check_type,
                "description": v.description,
            }
            for v in violations
        ]
    }


def read_baseline(directory: Path) -> Baseline:
    """``constraints.json`` (required) and ``statistics.json`` (for drift) from ``directory``."""
    if not directory.is_dir():
        raise MonitorInputError(f"--baseline {directory}: not a directory")
    constraints_path = directory / CONSTRAINTS_FILE
    if not constraints_path.is_file():
        raise MonitorInputError(
            f"--baseline {directory}: no {CONSTRAINTS_FILE} (make one with `smlocal monitor "
            "baseline --dataset ... --out DIR`, or copy the analyzer's)"
        )
    body = _load(constraints_path)
    where = str(constraints_path)
    config = _config(_obj(body.get("monitoring_config", {}), where, "monitoring_config"), where)
    features = tuple(
        _constraint(_obj(f, where, "features[]"), config, where)
        for f in _list(body.get("features"), where, "features")
    )
    statistics: dict[str, FeatureStats] = {}
    item_count = 0
    stats_path = directory / STATISTICS_FILE
    if stats_path.is_file():
        sbody = _load(stats_path)
        swhere = str(stats_path)
        dataset = _obj(sbody.get("dataset", {}), swhere, "dataset")
        item_count = _count(dataset.get("item_count", 0), swhere, "dataset.item_count")
        for raw in _list(sbody.get("features"), swhere, "features"):
            stats = _statistics(_obj(raw, swhere, "features[]"), swhere)
            statistics[stats.name] = stats
    return Baseline(features, config, statistics, item_count)


def _load(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MonitorInputError(f"{path}: not readable JSON ({error})") from None
    return _obj(body, str(path), "the file")


def _obj(value: Any, where: str, member: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MonitorInputError(f"{where}: {member} must be a JSON object")
    return value


def _list(value: Any, where: str, member: str) -> list[Any]:
    if not isinstance(value, list):
        raise MonitorInputError(f"{where}: {member} must be a JSON list")
    return value


def _num(value: Any, where: str = "", member: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MonitorInputError(f"{where}: {member} must be a number, not {value!r}")
    try:
        return float(value)  # the analyzer writes "NaN" as a string in places
    except ValueError:
        raise MonitorInputError(f"{where}: {member} must be a number, not {value!r}") from None


def _count(value: Any, where: str, member: str) -> int:
    number = _num(value, where, member)
    if not math.isfinite(number) or number < 0:
        raise MonitorInputError(f"{where}: {member} must be a count, not {value!r}")
    return int(number)


def _enabled(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("enabled", "true"))


def _config(
    raw: dict[str, Any], where: str, base: MonitoringConfig | None = None
) -> MonitoringConfig:
    c = base or MonitoringConfig()
    dist = _obj(raw.get("distribution_constraints", {}), where, "distribution_constraints")
    perform = dist.get("perform_comparison", dist.get("enable_comparisons"))
    method = str(dist.get("comparison_method", raw.get("comparison_method", c.comparison_method)))
    if method not in ("Simple", "Robust"):
        raise MonitorInputError(f"{where}: comparison_method must be Simple or Robust: {method!r}")
    return MonitoringConfig(
        evaluate_constraints=_enabled(raw["evaluate_constraints"])
        if "evaluate_constraints" in raw
        else c.evaluate_constraints,
        emit_metrics=_enabled(raw["emit_metrics"]) if "emit_metrics" in raw else c.emit_metrics,
        datatype_check_threshold=_num(
            raw.get("datatype_check_threshold", c.datatype_check_threshold), where, "threshold"
        ),
        domain_content_threshold=_num(
            raw.get("domain_content_threshold", c.domain_content_threshold), where, "threshold"
        ),
        perform_comparison=_enabled(perform) if perform is not None else c.perform_comparison,
        comparison_threshold=_num(
            dist.get(
                "comparison_threshold", raw.get("comparison_threshold", c.comparison_threshold)
            ),
            where,
            "comparison_threshold",
        ),
        comparison_method=method,
        categorical_comparison_threshold=_num(
            dist.get("categorical_comparison_threshold", c.categorical_comparison_threshold),
            where,
            "categorical_comparison_threshold",
        ),
        categorical_drift_method=str(
            dist.get("categorical_drift_method", c.categorical_drift_method)
        ),
    )


def _constraint(raw: dict[str, Any], config: MonitoringConfig, where: str) -> FeatureConstraint:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise MonitorInputError(f"{where}: every feature needs a name")
    kind = raw.get("inferred_type", UNKNOWN)
    if kind not in _TYPES:
        raise MonitorInputError(
            f"{where}: feature {name}: inferred_type {kind!r} is not one of {_TYPES}"
        )
    strings = _obj(raw.get("string_constraints", {}), where, f"{name}.string_constraints")
    nums = _obj(raw.get("num_constraints", {}), where, f"{name}.num_constraints")
    overrides = {
        **_obj(strings.get("monitoring_config_overrides", {}), where, "overrides"),
        **_obj(raw.get("monitoringConfigOverrides", {}), where, "overrides"),
        **_obj(raw.get("monitoring_config_overrides", {}), where, "overrides"),
    }
    domains = strings.get("domains")
    return FeatureConstraint(
        name=name,
        inferred_type=kind,
        completeness=_num(raw["completeness"], where, f"{name}.completeness")
        if "completeness" in raw
        else None,
        is_non_negative=bool(nums["is_non_negative"]) if "is_non_negative" in nums else None,
        domains=tuple(str(d) for d in _list(domains, where, f"{name}.domains"))
        if domains is not None
        else None,
        config=config.overridden(overrides, where),
    )


def _statistics(raw: dict[str, Any], where: str) -> FeatureStats:
    name = str(raw.get("name", ""))
    kind = str(raw.get("inferred_type", UNKNOWN))
    section = raw.get("numerical_statistics") or raw.get("string_statistics") or {}
    section = _obj(section, where, f"{name} statistics")
    common = _obj(section.get("common", {}), where, f"{name}.common")
    stats = FeatureStats(
        name,
        kind,
        _count(common.get("num_present", 0), where, "num_present"),
        _count(common.get("num_missing", 0), where, "num_missing"),
    )
    dist = _obj(section.get("distribution", {}), where, f"{name}.distribution")
    if "numerical_statistics" in raw:
        if kind not in (INTEGRAL, FRACTIONAL):
            stats.inferred_type = FRACTIONAL
        for key, attr in (("mean", "mean"), ("sum", "total"), ("std_dev", "std_dev")):
            setattr(stats, attr, _num(section.get(key, 0.0), where, key))
        stats.minimum = _num(section.get("min", 0.0), where, "min")
        stats.maximum = _num(section.get("max", 0.0), where, "max")
        kll = _obj(dist.get("kll", {}), where, f"{name}.kll")
        stats.buckets = [
            (_num(b["lower_bound"]), _num(b["upper_bound"]), _num(b["count"]))
            for b in _list(kll.get("buckets", []), where, "buckets")
            if isinstance(b, dict) and {"lower_bound", "upper_bound", "count"} <= b.keys()
        ]
        sketch = _obj(kll.get("sketch", {}), where, f"{name}.sketch")
        stats.sketch_levels = [
            [_num(x, where, "sketch item") for x in _list(level, where, "sketch level")]
            for level in _list(sketch.get("data", []), where, "sketch.data")
        ]
    else:
        stats.distinct_count = _num(section.get("distinct_count", 0.0), where, "distinct_count")
        cat = _obj(dist.get("categorical", {}), where, f"{name}.categorical")
        if "buckets" in cat:
            stats.categories = [
                (str(b.get("value")), _num(b.get("count", 0), where, "count"))
                for b in _list(cat["buckets"], where, "buckets")
                if isinstance(b, dict)
            ]
    return stats
