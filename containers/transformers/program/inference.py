"""Model loading, request decoding and classification for the text-classification container.

Nothing here knows about HTTP frameworks: :mod:`app` maps :class:`RequestError` to status
codes. Decoding is strict and every bad input raises :class:`RequestError` (never anything
else), so a malformed request can only ever produce a 4xx answer.

The request and answer follow the Hugging Face text-classification pipeline (and so the
SageMaker Hugging Face inference toolkit), so clients written for those work unchanged::

    {"inputs": "text"}                       -> [{"label": "POSITIVE", "score": 0.99}]
    {"inputs": ["a", "b"]}                   -> [{"label": ..., "score": ...}, {...}]
    {"inputs": "text", "parameters": {"top_k": 2}}      -> [{...}, {...}]  (best first)
    {"inputs": ["a", "b"], "parameters": {"top_k": 2}}  -> [[{...}, {...}], [{...}, {...}]]

``top_k: null`` means every label. Other parameters: ``truncation`` (default true: inputs
longer than ``max_length`` tokens are cut), ``max_length`` (default and upper bound: the
model's limit), ``function_to_apply`` (``softmax``, ``sigmoid`` or ``none``; default as the
pipeline: softmax for single-label models with several labels, sigmoid otherwise).

torch and transformers are imported lazily, by :meth:`ModelService.load`, so that the web
app starts (and answers /ping with 503) while they load.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger("textclf")

JSON = "application/json"
#: Upper bound on texts per request; larger batches are split into chunks of BATCH_SIZE.
MAX_INPUTS = 1024
BATCH_SIZE = 32
FUNCTIONS = ("softmax", "sigmoid", "none")
KNOWN_PARAMETERS = ("top_k", "truncation", "max_length", "function_to_apply")


class RequestError(Exception):
    """A client error: ``status`` is the HTTP status to answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ModelNotReadyError(Exception):
    """The model is not loaded (yet); the message says whether it is loading or failed."""


# --- request decoding ---------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A decoded, validated request."""

    texts: list[str]
    single: bool  # "inputs" was one string, not a list
    top_k: int | None  # None: the pipeline's legacy shape (best label only, flat list)
    all_labels: bool  # top_k: null
    truncation: bool
    max_length: int | None
    function_to_apply: str | None


def _reject_constant(name: str) -> float:
    raise RequestError(400, f"invalid JSON: {name} is not allowed")


def _parse_json(body: bytes, charset: str | None) -> dict[str, Any]:
    if not body.strip():
        raise RequestError(400, 'empty body: expected {"inputs": "text"} or {"inputs": [...]}')
    try:
        text = body.decode(charset or "utf-8")
    except LookupError:
        raise RequestError(415, f"unsupported charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"body is not valid {charset or 'utf-8'}: {exc.reason}") from None
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, f"invalid JSON: {exc}") from None
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise RequestError(
            400, 'JSON body must be an object with an "inputs" key: {"inputs": "text"}'
        )
    extra = sorted(set(payload) - {"inputs", "parameters"})
    if extra:
        raise RequestError(400, f"unknown keys {extra}: only 'inputs' and 'parameters'")
    return payload


def _texts(inputs: Any) -> tuple[list[str], bool]:
    """The texts of ``inputs`` and whether it was a single string."""
    if isinstance(inputs, str):
        texts, single = [inputs], True
    elif isinstance(inputs, list):
        texts, single = inputs, False
        if not texts:
            raise RequestError(400, '"inputs" is an empty list: send at least one text')
        if len(texts) > MAX_INPUTS:
            raise RequestError(400, f"too many inputs ({len(texts)} > {MAX_INPUTS})")
        for i, item in enumerate(texts):
            if not isinstance(item, str):
                raise RequestError(
                    400, f'"inputs"[{i}]: expected a string, got {type(item).__name__}'
                )
    else:
        raise RequestError(
            400, f'"inputs" must be a string or a list of strings, got {type(inputs).__name__}'
        )
    for i, item in enumerate(texts):
        if not item.strip():
            where = '"inputs"' if single else f'"inputs"[{i}]'
            raise RequestError(400, f"{where} is empty: send some text")
    return texts, single


def _top_k(parameters: dict[str, Any]) -> tuple[int | None, bool]:
    """(top_k, all_labels) from ``parameters``."""
    if "top_k" not in parameters:
        return None, False
    value = parameters["top_k"]
    if value is None:
        return None, True
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(400, f'"top_k" must be a positive integer or null, got {value!r:.40}')
    return value, False


def decode(body: bytes, charset: str | None) -> Request:
    """Decode a JSON request body (see the module docstring for its shape)."""
    payload = _parse_json(body, charset)
    texts, single = _texts(payload["inputs"])

    parameters = payload.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise RequestError(400, f'"parameters" must be an object, got {type(parameters).__name__}')
    unknown = sorted(set(parameters) - set(KNOWN_PARAMETERS))
    if unknown:
        raise RequestError(
            400, f"unsupported parameters {unknown}; supported: {', '.join(KNOWN_PARAMETERS)}"
        )
    top_k, all_labels = _top_k(parameters)

    truncation = parameters.get("truncation", True)
    if not isinstance(truncation, bool):
        raise RequestError(400, f'"truncation" must be true or false, got {truncation!r:.40}')

    max_length = parameters.get("max_length")
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2
    ):
        raise RequestError(400, f'"max_length" must be an integer >= 2, got {max_length!r:.40}')

    function = parameters.get("function_to_apply")
    if function is not None and (
        not isinstance(function, str) or function.lower() not in FUNCTIONS
    ):
        raise RequestError(
            400,
            f'"function_to_apply" must be one of {", ".join(FUNCTIONS)}, got {function!r:.40}',
        )

    return Request(
        texts=texts,
        single=single,
        top_k=top_k,
        all_labels=all_labels,
        truncation=truncation,
        max_length=max_length,
        function_to_apply=function.lower() if isinstance(function, str) else None,
    )


# --- the model ----------------------------------------------------------------------------


class Classifier:
    """A sequence-classification model and its tokenizer, loaded with ``from_pretrained``."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        transformers.logging.disable_progress_bar()  # no "Loading weights" bar in the logs
        self._torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # local_files_only as well as HF_HUB_OFFLINE: the image must never try a hub, even
        # when someone runs it with the offline variables unset.
        self.tokenizer: Any = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model: Any = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True
        )
        self.model = model.to(self.device).eval()
        config = self.model.config
        self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        self.default_function = (
            "softmax"
            if config.num_labels > 1 and config.problem_type != "multi_label_classification"
            else "sigmoid"
        )
        # The longest input the model can take: the tokenizer's declared limit, capped by the
        # position embeddings (a tokenizer saved without a limit declares a huge number).
        limits = [int(self.tokenizer.model_max_length)]
        positions = getattr(config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            limits.append(positions)
        self.max_length = min(limits)
        # Fast tokenizers are Rust objects that refuse concurrent use with changing
        # truncation settings ("Already borrowed"); tokenising is quick, so serialise it.
        self._tokenizer_lock = threading.Lock()

    def _scores(self, texts: list[str], request: Request) -> torch.Tensor:
        th = self._torch  # imported lazily, see the module docstring
        max_length = request.max_length or self.max_length
        if max_length > self.max_length:
            raise RequestError(
                400, f'"max_length" {max_length} exceeds the model\'s limit of {self.max_length}'
            )
        with self._tokenizer_lock:
            encoded = self.tokenizer(
                texts,
                padding=True,
                truncation=request.truncation,
                max_length=max_length if request.truncation else None,
                return_tensors="pt",
            )
        length = int(encoded["input_ids"].shape[1])
        if length > max_length:  # only without truncation
            raise RequestError(
                400,
                f"an input is {length} tokens long; the limit is {max_length}: shorten it or "
                'set "truncation": true',
            )
        with th.inference_mode():
            logits = self.model(**encoded.to(self.device)).logits.float().cpu()
        function = request.function_to_apply or self.default_function
        scores: torch.Tensor = logits
        if function == "softmax":
            scores = th.softmax(logits, dim=-1)
        elif function == "sigmoid":
            scores = th.sigmoid(logits)
        return scores

    def classify(self, request: Request) -> list[Any]:
        """Answer ``request`` in the pipeline's output shape (see the module docstring)."""
        results: list[list[dict[str, Any]]] = []
        for start in range(0, len(request.texts), BATCH_SIZE):
            scores = self._scores(request.texts[start : start + BATCH_SIZE], request)
            for row in scores.tolist():
                pairs = zip(self.labels, row, strict=True)
                ranked = [
                    {"label": label, "score": float(score)}
                    for label, score in sorted(pairs, key=lambda pair: -pair[1])
                ]
                results.append(ranked)
        if request.top_k is None and not request.all_labels:
            best = [ranked[0] for ranked in results]  # legacy shape: one dict per input
            return best if not request.single else best[:1]
        k = len(self.labels) if request.all_labels else request.top_k
        top = [ranked[:k] for ranked in results]
        return top[0] if request.single else top


class ModelService:
    """Loads the model of one worker in a background thread, so the worker serves meanwhile.

    Loading in the background keeps gunicorn's worker heartbeat going (a model that takes
    longer to load than the worker timeout would otherwise get the worker killed, forever)
    and lets /ping answer 503 at once instead of hanging. Each worker reports only its own
    state; an invocation that reaches a worker still loading waits for it (up to
    ``wait_s``) rather than failing, because /ping may have been answered by a sibling
    worker that finished first.

    A failed load is logged and retried when asked for, at most once every
    ``retry_interval`` seconds.
    """

    def __init__(self, model_dir: Path, retry_interval: float = 5.0) -> None:
        self.model_dir = model_dir
        self.retry_interval = retry_interval
        self._model: Classifier | None = None
        self._error: str | None = None
        self._loading = threading.Event()  # set while a load runs
        self._idle = threading.Event()  # set while none runs
        self._idle.set()
        self._last_attempt = -math.inf
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start loading in the background unless loaded, loading, or failed just now."""
        with self._lock:
            if self._model is not None or self._loading.is_set():
                return
            if time.monotonic() - self._last_attempt < self.retry_interval:
                return
            self._loading.set()
            self._idle.clear()
            self._last_attempt = time.monotonic()
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        model: Classifier | None = None
        error: str | None = None
        try:
            model = Classifier(self.model_dir)
        except Exception as exc:
            present = (
                sorted(p.name for p in self.model_dir.iterdir())
                if self.model_dir.is_dir()
                else "missing"
            )
            error = f"{type(exc).__name__}: {exc} (model dir {self.model_dir}: {present})"
            log.error("model not loaded: %s", error)
        else:
            log.info(
                "model loaded from %s in %.1f s on %s: labels=%s, max_length=%d, pid %d",
                self.model_dir,
                time.perf_counter() - started,
                model.device,
                model.labels,
                model.max_length,
                os.getpid(),
            )
        with self._lock:
            self._model, self._error = model, error
            self._loading.clear()
            self._idle.set()

    def get(self, wait_s: float = 0.0) -> Classifier:
        """The loaded model, waiting up to ``wait_s`` for a load in progress.

        Raises :class:`ModelNotReadyError` (and starts a retry if due) otherwise.
        """
        model = self._model
        if model is not None:
            return model
        self.start()
        if wait_s > 0:
            self._idle.wait(wait_s)
        with self._lock:
            if self._model is not None:
                return self._model
            if self._loading.is_set():
                raise ModelNotReadyError(
                    "model is loading" + (f" (last error: {self._error})" if self._error else "")
                )
            raise ModelNotReadyError(self._error or "model is loading")
