"""``monitor baseline``: a dataset's statistics and suggested constraints, as the analyzer writes.

:func:`run_baseline` reads the dataset (:mod:`table`), profiles every column (:mod:`profile`)
and writes ``statistics.json`` and ``constraints.json`` (:mod:`files`) into the output
directory. String domains are suggested by Deequ's categorical-range rule: at most
:data:`~smlocal.monitor.profile.CATEGORICAL_MAX_DISTINCT` distinct values, of which at most
:data:`DOMAIN_MAX_UNIQUE_RATIO` occur only once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smlocal.monitor.errors import MonitorInputError
from smlocal.monitor.files import (
    CONSTRAINTS_FILE,
    STATISTICS_FILE,
    constraints_body,
    dump,
    statistics_body,
)
from smlocal.monitor.profile import FeatureStats, profile_column
from smlocal.monitor.table import Table, read_dataset

__all__ = ["DOMAIN_MAX_UNIQUE_RATIO", "BaselineResult", "profile_table", "run_baseline"]

DOMAIN_MAX_UNIQUE_RATIO = 0.1  # Deequ's CategoricalRangeRule


@dataclass(frozen=True)
class BaselineResult:
    statistics: Path
    constraints: Path
    rows: int
    features: tuple[FeatureStats, ...]


def profile_table(table: Table) -> list[FeatureStats]:
    return [profile_column(name, table.columns[name]).stats for name in table.names]


def suggested_domains(features: list[FeatureStats]) -> dict[str, list[str]]:
    domains: dict[str, list[str]] = {}
    for f in features:
        if f.is_numeric or not f.categories:
            continue
        once = sum(1 for _, count in f.categories if count == 1)
        if once / len(f.categories) <= DOMAIN_MAX_UNIQUE_RATIO:
            domains[f.name] = sorted(value for value, _ in f.categories)
    return domains


def run_baseline(
    dataset: Path, out: Path, *, header: bool = False, dataset_format: str | None = None
) -> BaselineResult:
    """Profile ``dataset`` and write ``statistics.json`` and ``constraints.json`` into ``out``."""
    table = read_dataset(dataset, header=header, dataset_format=dataset_format)
    features = profile_table(table)
    try:
        out.mkdir(parents=True, exist_ok=True)
        stats_path, constraints_path = out / STATISTICS_FILE, out / CONSTRAINTS_FILE
        dump(stats_path, statistics_body(table.rows, features))
        dump(constraints_path, constraints_body(features, suggested_domains(features)))
    except OSError as error:
        raise MonitorInputError(f"--out {out}: {error.strerror or error}") from None
    return BaselineResult(stats_path, constraints_path, table.rows, tuple(features))
