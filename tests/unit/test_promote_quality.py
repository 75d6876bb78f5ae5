"""The optional quality gate's parsing and scoring (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smlocal.emulator.errors import ConfigError
from smlocal.promote.quality import QualityGate, parse_gate, read_eval_data, score


@pytest.mark.parametrize(
    ("text", "gate"),
    [
        ("accuracy>=0.9", QualityGate("accuracy", ">=", 0.9)),
        (" f1 > 0.75 ", QualityGate("f1", ">", 0.75)),
        ("rmse<=1.5", QualityGate("rmse", "<=", 1.5)),
        ("r2<1", QualityGate("r2", "<", 1.0)),
    ],
)
def test_gate_expressions_parse(text: str, gate: QualityGate) -> None:
    assert parse_gate(text) == gate


@pytest.mark.parametrize("text", ["precision>=0.9", "accuracy=0.9", "accuracy>=high", ""])
def test_bad_gate_expressions_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="METRIC OP NUMBER"):
        parse_gate(text)


def test_scores() -> None:
    truth, predicted = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert score("accuracy", truth, predicted) == 0.75
    # f1(a) = 2/3, f1(b) = 4/5 → macro 0.7333
    assert score("f1", truth, predicted) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert score("rmse", ["1", "2"], ["1", "4"]) == pytest.approx(2**0.5)
    assert score("r2", ["1", "2", "3"], ["1", "2", "3"]) == 1.0


def test_eval_data_splits_features_from_the_last_column(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("5.1,3.5,1.4,0.2,setosa\n6.7,3.0,5.2,2.3,virginica\n")
    assert read_eval_data(path) == (
        "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
        ["setosa", "virginica"],
    )
