"""Train the multi-model reference family: several small iris classifiers, one model.tar.gz each.

Each artifact holds ``model.joblib`` (a scikit-learn classifier) and ``metadata.json``
(``model_id``, ``class_names``, what it is), the layout the container loads from
``/opt/ml/models/<model_name>/model``. The models differ on purpose, so a test can tell which
one answered: their ``model_id`` is in every answer, and they disagree on borderline flowers.

- ``logistic.tar.gz``  StandardScaler + LogisticRegression on all four features
- ``stump.tar.gz``     a depth-1 decision tree (it can only tell setosa from the rest)
- ``sepal-knn.tar.gz`` 5-nearest neighbours on the sepal measurements only

Deterministic (fixed seeds, sorted members, fixed mtimes), and run with the host venv, whose
scikit-learn/numpy/scipy/joblib equal the pins in requirements.txt::

    .venv/bin/python containers/multi-model/train.py [--out containers/multi-model/build/models]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

DEFAULT_OUT = Path(__file__).resolve().parent / "build" / "models"
FIXED_MTIME = 1_704_067_200  # 2024-01-01T00:00:00Z


def family() -> dict[str, tuple[Any, str]]:
    """model id -> (unfitted estimator, description)."""
    sepals = ColumnTransformer([("sepal", "passthrough", [0, 1])])
    return {
        "logistic": (
            Pipeline(
                [
                    ("scale", StandardScaler()),
                    ("classify", LogisticRegression(max_iter=1000, random_state=0)),
                ]
            ),
            "StandardScaler + LogisticRegression, all features",
        ),
        "stump": (DecisionTreeClassifier(max_depth=1, random_state=0), "depth-1 decision tree"),
        "sepal-knn": (
            Pipeline([("sepal", sepals), ("knn", KNeighborsClassifier(n_neighbors=5))]),
            "5-nearest neighbours on sepal length and width only",
        ),
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def write_artifact(out: Path, estimator: Any, metadata: dict[str, Any]) -> None:
    model = io.BytesIO()
    joblib.dump(estimator, model)
    meta = (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=FIXED_MTIME) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add(tar, "metadata.json", meta)
        _add(tar, "model.joblib", model.getvalue())
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for the tarballs")
    args = parser.parse_args(argv)
    iris = load_iris()
    features, target = np.asarray(iris.data, dtype=np.float64), np.asarray(iris.target)
    for model_id, (estimator, what) in family().items():
        estimator.fit(features, target)
        accuracy = round(float(estimator.score(features, target)), 6)
        metadata = {
            "model_id": model_id,
            "model": what,
            "class_names": [str(n) for n in iris.target_names],
            "training_accuracy": accuracy,
        }
        out = args.out / f"{model_id}.tar.gz"
        write_artifact(out, estimator, metadata)
        print(f"wrote {out} ({out.stat().st_size} bytes): {what}, accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
