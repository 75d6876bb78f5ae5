"""The models this container has loaded, and what a request to one of them answers.

SageMaker's multi-model API (its "Load/List/Get/Unload/Invoke Model" container contract) maps
onto :class:`Registry`: :meth:`~Registry.load` (``POST /models``; :class:`Conflict` = 409 when
the name is loaded, :class:`OutOfMemory` = 507 when ``MME_MAX_MODELS`` are loaded already),
:meth:`~Registry.page` (``GET /models``, sorted names with an integer ``next_page_token``
offset like awslabs/multi-model-server), :meth:`~Registry.get`, :meth:`~Registry.unload` and
:meth:`~Registry.predict` (:class:`NotLoaded` = 404). Nothing here knows about HTTP.

A model directory holds ``model.joblib`` (a fitted scikit-learn classifier with
``predict_proba``) and ``metadata.json`` (``model_id``, ``class_names``), as train.py makes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

log = logging.getLogger("mme")

JSON = "application/json"
CSV = "text/csv"
MAX_PAGE = 100  # multi-model-server's limit on one GET /models page
MAX_INSTANCES = 100_000


class RegistryError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RegistryError):
    status = 400


class NotLoaded(RegistryError):
    status = 404


class Conflict(RegistryError):
    status = 409


class OutOfMemory(RegistryError):
    status = 507


class UnsupportedType(RegistryError):
    status = 415


@dataclass(frozen=True)
class Model:
    name: str
    url: str
    model_id: str
    estimator: Any
    class_names: tuple[str, ...]
    n_features: int

    def describe(self) -> dict[str, str]:
        return {"modelName": self.name, "modelUrl": self.url}


def _read(name: str, url: str) -> Model:
    directory = Path(url)
    path = directory / "model.joblib"
    if not path.is_file():
        present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else None
        raise BadRequest(f"cannot load {name}: {path} not found (directory holds {present})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = joblib.load(path)
    if not hasattr(estimator, "predict_proba"):
        raise BadRequest(f"cannot load {name}: {path} holds no classifier")
    metadata: dict[str, Any] = {}
    if (directory / "metadata.json").is_file():
        metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    classes = [str(c) for c in getattr(estimator, "classes_", [])]
    names = [str(n) for n in metadata.get("class_names", [])]
    return Model(
        name=name,
        url=url,
        model_id=str(metadata.get("model_id", name)),
        estimator=estimator,
        class_names=tuple(names if len(names) == len(classes) else classes),
        n_features=int(getattr(estimator, "n_features_in_", 4)),
    )


class Registry:
    """Loaded models by name; every method is thread-safe (the server is threaded)."""

    def __init__(self, max_models: int | None) -> None:
        self.max_models = max_models
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()
        self._loading: set[str] = set()

    def load(self, name: str, url: str) -> Model:
        with self._lock:
            if name in self._models or name in self._loading:
                raise Conflict(f"Model {name} is already registered.")
            if self.max_models is not None and len(self._models) >= self.max_models:
                raise OutOfMemory(
                    f"cannot load {name}: {len(self._models)} model(s) loaded, the most this "
                    f"container holds (MME_MAX_MODELS={self.max_models})"
                )
            self._loading.add(name)
        try:
            model = _read(name, url)
        finally:
            with self._lock:
                self._loading.discard(name)
        with self._lock:
            self._models[name] = model
        log.info("loaded model %s (%s) from %s", name, model.model_id, url)
        return model

    def unload(self, name: str) -> None:
        with self._lock:
            if self._models.pop(name, None) is None:
                raise NotLoaded(f"Model not found: {name}")
        log.info("unloaded model %s", name)

    def get(self, name: str) -> Model:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise NotLoaded(f"Model not found: {name}")
        return model

    def page(self, limit: str | None, token: str | None) -> dict[str, Any]:
        """One page of ``GET /models``: ``limit`` (default and most 100), ``next_page_token``
        an offset into the sorted names; ``nextPageToken`` only when more remain."""
        try:
            size = MAX_PAGE if limit is None else max(0, min(MAX_PAGE, int(limit)))
            offset = 0 if token is None else max(0, int(token))
        except ValueError:
            raise BadRequest("limit and next_page_token must be integers") from None
        with self._lock:
            names = sorted(self._models)
            models = [self._models[n].describe() for n in names[offset : offset + size]]
        answer: dict[str, Any] = {"models": models}
        if offset + size < len(names):
            answer["nextPageToken"] = str(offset + size)
        return answer

    def predict(self, name: str, body: bytes, content_type: str) -> dict[str, Any]:
        model = self.get(name)
        rows = decode(body, content_type, model.n_features)
        probabilities = np.asarray(model.estimator.predict_proba(rows), dtype=np.float64)
        predictions = []
        for row in probabilities:
            best = int(row.argmax())
            predictions.append(
                {
                    "predicted_class": model.class_names[best],
                    "probabilities": {
                        c: round(float(p), 6) for c, p in zip(model.class_names, row, strict=True)
                    },
                }
            )
        return {"model_id": model.model_id, "predictions": predictions}


def decode(body: bytes, content_type: str, n_features: int) -> Any:
    """``{"instances": [[...], ...]}`` (JSON) or CSV rows into an ``(m, n)`` float array."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    if content_type == JSON:
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"invalid JSON: {exc}") from None
        rows = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            raise BadRequest('JSON body must be {"instances": [[...], ...]}')
    elif content_type == CSV:
        rows = [r for r in csv.reader(io.StringIO(text)) if any(f.strip() for f in r)]
    else:
        raise UnsupportedType(f"unsupported Content-Type {content_type!r}; use {JSON} or {CSV}")
    if not rows or len(rows) > MAX_INSTANCES:
        raise BadRequest(f"send 1 to {MAX_INSTANCES} instances")
    values = np.empty((len(rows), n_features), dtype=np.float64)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n_features:
            raise BadRequest(f"instance {i}: expected {n_features} numbers")
        for j, value in enumerate(row):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise BadRequest(f"instance {i}, feature {j}: not a number") from None
            if isinstance(value, bool) or not math.isfinite(number):
                raise BadRequest(f"instance {i}, feature {j}: not a finite number")
            values[i, j] = number
    return values
