"""Model loading, request decoding and response encoding for the iris container.

Nothing here knows about HTTP frameworks: :mod:`app` maps :class:`RequestError` to status
codes. Decoding is strict and every bad input raises :class:`RequestError` (never anything
else), so a malformed request can only ever produce a 4xx answer.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from numpy.typing import NDArray

log = logging.getLogger("iris")

JSON = "application/json"
CSV = "text/csv"
SUPPORTED_CONTENT_TYPES = (JSON, CSV)
SUPPORTED_ACCEPT_TYPES = (JSON, CSV)
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
#: Upper bound on instances per request (a 6 MiB body holds ~400k CSV rows at most).
MAX_INSTANCES = 1_000_000
PROBABILITY_DIGITS = 6


class RequestError(Exception):
    """A client error: ``status`` is the HTTP status to answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ModelNotReadyError(Exception):
    """The model is not loaded (yet); the message carries the last load error, if any."""


@dataclass(frozen=True)
class LoadedModel:
    """A fitted classifier plus what is needed to name its outputs."""

    estimator: Any
    class_names: tuple[str, ...]
    n_features: int

    def predict(self, features: NDArray[np.float64]) -> list[dict[str, Any]]:
        """Classify each row of ``features`` (shape ``(n, n_features)``)."""
        probabilities = np.asarray(self.estimator.predict_proba(features), dtype=np.float64)
        best = probabilities.argmax(axis=1)
        predictions: list[dict[str, Any]] = []
        for row, index in zip(probabilities, best, strict=True):
            predictions.append(
                {
                    "predicted_class": self.class_names[int(index)],
                    "predicted_class_index": int(index),
                    "probabilities": {
                        name: round(float(p), PROBABILITY_DIGITS)
                        for name, p in zip(self.class_names, row, strict=True)
                    },
                }
            )
        return predictions


def load_model(model_dir: Path) -> LoadedModel:
    """Load ``model.joblib`` (+ optional ``metadata.json``) from ``model_dir``, read-only."""
    model_path = model_dir / MODEL_FILE
    if not model_path.is_file():
        present = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else None
        raise FileNotFoundError(
            f"{model_path} not found (model dir contents: {present})"
            if present is not None
            else f"model directory {model_dir} does not exist"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = joblib.load(model_path)
    for warning in caught:  # e.g. InconsistentVersionWarning: worth seeing in the logs
        log.warning("while loading %s: %s", model_path, warning.message)
    if not hasattr(estimator, "predict_proba"):
        raise TypeError(f"{model_path} holds a {type(estimator).__name__} without predict_proba")

    classes = [str(c) for c in getattr(estimator, "classes_", [])]
    metadata_path = model_dir / METADATA_FILE
    if metadata_path.is_file():
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        names = [str(n) for n in metadata.get("class_names", [])]
        if len(names) == len(classes):
            classes = names
        else:
            log.warning("%s: class_names do not match the model's classes; ignored", metadata_path)
    n_features = int(getattr(estimator, "n_features_in_", 0))
    if n_features <= 0:
        raise TypeError(f"{model_path}: cannot tell the model's number of features")
    return LoadedModel(estimator=estimator, class_names=tuple(classes), n_features=n_features)


class ModelService:
    """Holds the model of one worker; loads it once, retrying (throttled) after a failure."""

    def __init__(self, model_dir: Path, retry_interval: float = 1.0) -> None:
        self.model_dir = model_dir
        self.retry_interval = retry_interval
        self._model: LoadedModel | None = None
        self._error: str | None = None
        self._last_attempt = -math.inf
        self._lock = threading.Lock()

    def load(self) -> LoadedModel:
        """Return the model, loading it if needed; raise :class:`ModelNotReadyError` if not."""
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is not None:
                return self._model
            now = time.monotonic()
            if now - self._last_attempt >= self.retry_interval:
                self._last_attempt = now
                started = time.perf_counter()
                try:
                    self._model = load_model(self.model_dir)
                except Exception as exc:
                    self._error = f"{type(exc).__name__}: {exc}"
                    log.error("model not loaded from %s: %s", self.model_dir, self._error)
                else:
                    self._error = None
                    log.info(
                        "model loaded from %s in %.1f ms: classes=%s features=%d",
                        self.model_dir,
                        (time.perf_counter() - started) * 1000,
                        list(self._model.class_names),
                        self._model.n_features,
                    )
                    return self._model
            raise ModelNotReadyError(self._error or "model is loading")


# --- request decoding ---------------------------------------------------------------------


def _decode_text(body: bytes, charset: str | None) -> str:
    encoding = charset or "utf-8"
    try:
        return body.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
    except LookupError:
        raise RequestError(415, f"unsupported charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"body is not valid {encoding}: {exc.reason}") from None


def _check_finite(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    if not np.isfinite(rows).all():
        bad = int(np.argwhere(~np.isfinite(rows))[0][0])
        raise RequestError(400, f"instance {bad}: values must be finite numbers (no NaN/inf)")
    return rows


def _reject_constant(name: str) -> float:
    raise RequestError(400, f"invalid JSON: {name} is not allowed (values must be finite)")


def decode_json(body: bytes, n_features: int) -> NDArray[np.float64]:
    """Decode ``{"instances": [[f1, ..., fn], ...]}`` into an ``(m, n)`` float array."""
    if not body.strip():
        raise RequestError(400, 'empty body: expected {"instances": [[...], ...]}')
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise RequestError(400, f"invalid JSON: {exc}") from None
    if not isinstance(payload, dict) or "instances" not in payload:
        raise RequestError(
            400, 'JSON body must be an object with an "instances" key: {"instances": [[...]]}'
        )
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise RequestError(400, '"instances" must be a list of instances')
    if not instances:
        raise RequestError(400, '"instances" is empty: send at least one instance')
    if len(instances) > MAX_INSTANCES:
        raise RequestError(400, f"too many instances ({len(instances)} > {MAX_INSTANCES})")
    rows = np.empty((len(instances), n_features), dtype=np.float64)
    for i, instance in enumerate(instances):
        if not isinstance(instance, list):
            raise RequestError(
                400,
                f"instance {i}: expected a list of {n_features} numbers, "
                f"got {type(instance).__name__}",
            )
        if len(instance) != n_features:
            raise RequestError(
                400, f"instance {i}: expected {n_features} features, got {len(instance)}"
            )
        for j, value in enumerate(instance):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RequestError(
                    400, f"instance {i}, feature {j}: expected a number, got {value!r:.40}"
                )
            try:
                rows[i, j] = value
            except OverflowError:  # an int beyond float range
                raise RequestError(400, f"instance {i}, feature {j}: number out of range") from None
    return _check_finite(rows)


def decode_csv(body: bytes, charset: str | None, n_features: int) -> NDArray[np.float64]:
    """Decode CSV rows of ``n_features`` numbers (no header) into an ``(m, n)`` float array."""
    text = _decode_text(body, charset)
    values: list[list[float]] = []
    try:
        for line_no, record in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if not record or all(not field.strip() for field in record):
                continue  # blank line
            if len(record) != n_features:
                raise RequestError(
                    400, f"CSV line {line_no}: expected {n_features} features, got {len(record)}"
                )
            row: list[float] = []
            for j, field in enumerate(record):
                try:
                    row.append(float(field))
                except ValueError:
                    raise RequestError(
                        400,
                        f"CSV line {line_no}, column {j + 1}: {field.strip()!r:.40} is not a "
                        "number (send data rows only, no header)",
                    ) from None
            values.append(row)
            if len(values) > MAX_INSTANCES:
                raise RequestError(400, f"too many rows (> {MAX_INSTANCES})")
    except csv.Error as exc:
        raise RequestError(400, f"invalid CSV: {exc}") from None
    if not values:
        raise RequestError(400, "empty body: expected CSV rows of numbers")
    return _check_finite(np.asarray(values, dtype=np.float64))


def decode(
    body: bytes, media_type: str, charset: str | None, n_features: int
) -> NDArray[np.float64]:
    """Decode a request body by media type (already lower-cased, parameters stripped)."""
    if media_type == JSON:
        return decode_json(body, n_features)
    if media_type == CSV:
        return decode_csv(body, charset, n_features)
    raise RequestError(
        415,
        f"unsupported Content-Type {media_type or '(none)'!r}; "
        f"supported: {', '.join(SUPPORTED_CONTENT_TYPES)}",
    )


def encode(predictions: Sequence[dict[str, Any]], accept: str) -> bytes:
    """Encode predictions as ``accept`` (one of :data:`SUPPORTED_ACCEPT_TYPES`)."""
    if accept == CSV:
        return "".join(f"{p['predicted_class']}\n" for p in predictions).encode()
    return json.dumps({"predictions": list(predictions)}, separators=(",", ":")).encode()
