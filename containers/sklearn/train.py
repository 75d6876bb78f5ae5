"""Train the reference iris classifier and package it as a SageMaker model artifact.

The artifact is a gzipped tarball with two members at its root, the layout SageMaker extracts
into ``/opt/ml/model``:

- ``model.joblib``: a scikit-learn ``Pipeline`` (``StandardScaler`` + ``LogisticRegression``);
- ``metadata.json``: class names, feature names and the library versions it was trained with.

Training is deterministic (fixed ``random_state``, no shuffling) and the tarball is written
reproducibly (sorted members, fixed mtimes and owners), so two runs give the same model.
Iris ships with scikit-learn: no network access is needed.

Run with the host venv (its scikit-learn/numpy/scipy/joblib versions are the ones pinned in
``requirements.txt``, because the model is pickled here and unpickled in the container)::

    .venv/bin/python containers/sklearn/train.py [--out containers/sklearn/build/model.tar.gz]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

DEFAULT_OUT = Path(__file__).resolve().parent / "build" / "model.tar.gz"
RANDOM_STATE = 0
#: Fixed timestamp for tar members and the gzip header (2024-01-01T00:00:00Z).
FIXED_MTIME = 1_704_067_200


def train() -> tuple[Pipeline, dict[str, Any]]:
    """Fit the classifier on the full iris data set.

    Returns:
        The fitted pipeline and the metadata to ship next to it.
    """
    iris = load_iris()
    features = np.asarray(iris.data, dtype=np.float64)
    target = np.asarray(iris.target)
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(max_iter=1000, random_state=RANDOM_STATE)),
        ]
    )
    model.fit(features, target)
    accuracy = float(model.score(features, target))
    metadata: dict[str, Any] = {
        "class_names": [str(name) for name in iris.target_names],
        "feature_names": [str(name) for name in iris.feature_names],
        "model": "StandardScaler + LogisticRegression",
        "training_accuracy": round(accuracy, 6),
        "training_samples": int(features.shape[0]),
        "versions": {
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "joblib": joblib.__version__,
        },
    }
    return model, metadata


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add one regular file to ``tar`` with reproducible metadata."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def write_artifact(model: Pipeline, metadata: dict[str, Any], out: Path) -> None:
    """Write ``model.joblib`` and ``metadata.json`` into the tarball ``out`` (atomically)."""
    model_bytes = io.BytesIO()
    joblib.dump(model, model_bytes)
    metadata_bytes = (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=FIXED_MTIME) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add_bytes(tar, "metadata.json", metadata_bytes)
        _add_bytes(tar, "model.joblib", model_bytes.getvalue())
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: train, write the artifact, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"where to write the model tarball (default: {DEFAULT_OUT})",
    )
    args = parser.parse_args(argv)
    out: Path = args.out

    model, metadata = train()
    write_artifact(model, metadata, out)
    size = out.stat().st_size
    print(f"wrote {out} ({size} bytes): model.joblib, metadata.json")
    print(
        f"classes: {', '.join(metadata['class_names'])}; features: {len(metadata['feature_names'])}"
    )
    print(f"training accuracy: {metadata['training_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
