"""The quality gate serves the real sklearn image locally and scores labelled rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smlocal.emulator.errors import SmlocalError
from smlocal.promote.errors import GateRefusedError
from smlocal.promote.quality import parse_gate, run_quality_gate
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL

pytestmark = pytest.mark.docker


def _iris_rows(path: Path) -> Path:
    from sklearn.datasets import load_iris  # type: ignore[import-untyped]

    iris = load_iris()
    lines = []
    for features, target in list(zip(iris.data, iris.target, strict=True))[::10]:
        lines.append(",".join(f"{v:g}" for v in features) + f",{iris.target_names[target]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rows_are_scored_through_the_served_image_and_a_miss_is_refused(
    tmp_path: Path, smlocal_home: Path
) -> None:
    # One local serve covers both paths (containers are slow to start on shared CI): the
    # iris model classifies these rows (nearly) perfectly, so a gate above 1.0 must refuse,
    # and the refusal reports the accuracy it measured.
    rows = _iris_rows(tmp_path / "rows.csv")
    with pytest.raises(GateRefusedError, match=r"wants accuracy>1") as refused:
        run_quality_gate(parse_gate("accuracy>1"), SKLEARN_IMAGE, str(SKLEARN_MODEL), rows)
    measured = re.search(r"accuracy on .* is ([0-9.]+)", str(refused.value))
    assert measured is not None and float(measured[1]) >= 0.9


def test_an_image_that_cannot_be_served_is_a_clear_error(
    tmp_path: Path, smlocal_home: Path
) -> None:
    with pytest.raises(SmlocalError, match="could not serve smlocal/no-such-image"):
        run_quality_gate(
            parse_gate("accuracy>=0.9"),
            "smlocal/no-such-image:latest",
            str(SKLEARN_MODEL),
            _iris_rows(tmp_path / "a"),
        )
