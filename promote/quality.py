"""The optional quality gate: ``--gate "accuracy>=0.9" --eval-data rows.csv``.

Before any AWS call, the image is served locally in this process (the emulator's server in a
background thread on a free loopback port, as the contract test and load tests serve it), the
labelled rows are sent as one ``text/csv``
request (features only; the LAST column of each row is the label), and the answer (one
prediction per line, ``Accept: text/csv``) is scored. Promote is refused when the metric
misses. Metrics: ``accuracy`` and ``f1`` (macro) compare labels as strings; ``r2`` and
``rmse`` compare them as numbers.
"""

from __future__ import annotations

import csv
import io
import math
import operator
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from smlocal.emulator.errors import ConfigError
from smlocal.promote.errors import GateRefusedError, PromoteError

__all__ = ["QualityGate", "parse_gate", "read_eval_data", "run_quality_gate", "score"]

_EXPR = re.compile(r"\s*(accuracy|f1|r2|rmse)\s*(>=|<=|>|<)\s*(-?[0-9.]+(?:e-?\d+)?)\s*")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class QualityGate:
    metric: str
    op: str
    threshold: float

    def passes(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


def parse_gate(text: str) -> QualityGate:
    match = _EXPR.fullmatch(text)
    if match is None:
        raise ConfigError(
            f"--gate expects METRIC OP NUMBER with METRIC one of accuracy, f1, r2, rmse "
            f"(e.g. 'accuracy>=0.9'); got {text!r}"
        )
    return QualityGate(match[1], match[2], float(match[3]))


def read_eval_data(path: Path) -> tuple[str, list[str]]:
    """The CSV body of the features (labels removed) and the labels, in row order."""
    try:
        rows = [row for row in csv.reader(path.read_text().splitlines()) if row]
    except OSError as error:
        raise ConfigError(f"--eval-data {path}: {error.strerror}") from None
    if not rows or any(len(row) < 2 for row in rows):
        raise ConfigError(f"--eval-data {path}: expected CSV rows of features then a label")
    body = io.StringIO()
    csv.writer(body, lineterminator="\n").writerows(row[:-1] for row in rows)
    return body.getvalue(), [row[-1].strip() for row in rows]


def _f1_macro(truth: Sequence[str], predicted: Sequence[str]) -> float:
    scores = []
    for label in sorted(set(truth) | set(predicted)):
        tp = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(p == label != t for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label != p for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def score(metric: str, truth: Sequence[str], predicted: Sequence[str]) -> float:
    if len(truth) != len(predicted):
        raise PromoteError(f"{len(truth)} labelled rows but {len(predicted)} predictions came back")
    if metric == "accuracy":
        return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    if metric == "f1":
        return _f1_macro(truth, predicted)
    try:
        y, yhat = [float(t) for t in truth], [float(p) for p in predicted]
    except ValueError:
        raise PromoteError(f"{metric} needs numeric labels and predictions") from None
    squared = sum((a - b) ** 2 for a, b in zip(y, yhat, strict=True))
    if metric == "rmse":
        return math.sqrt(squared / len(y))
    mean = sum(y) / len(y)
    total = sum((a - mean) ** 2 for a in y)
    return 1.0 - squared / total if total else 0.0


def _predict(url: str, name: str, body: str) -> list[str]:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )
    answer = runtime.invoke_endpoint(
        EndpointName=name, Body=body.encode(), ContentType="text/csv", Accept="text/csv"
    )
    text: str = answer["Body"].read().decode()
    return [line.strip() for line in text.splitlines() if line.strip()]


def run_quality_gate(gate: QualityGate, image: str, model: str, eval_data: Path) -> float:
    """Serve locally, score the rows; the metric's value, or GateRefusedError if it misses."""
    body, labels = read_eval_data(eval_data)
    from smlocal.emulator.background import serve_in_background
    from smlocal.emulator.docker_backend import DockerBackend
    from smlocal.emulator.spec import build_spec

    name = f"smlocal-quality-{uuid.uuid4().hex[:8]}"
    spec = build_spec(name=name, variants=[{"image": image, "model": model}])
    with serve_in_background(spec, DockerBackend()) as served:
        if served.result is not None or served.status != "InService":
            reason = served.sink.statuses[-1][2] if served.sink.statuses else "no status"
            raise PromoteError(f"could not serve {image} locally for --gate: {reason}")
        predicted = _predict(served.url, name, body)
    value = score(gate.metric, labels, predicted)
    if not gate.passes(value):
        raise GateRefusedError(
            f"refusing to promote {image}: {gate.metric} on {eval_data} is {value:.4g}, "
            f"the gate wants {gate}"
        )
    return value
