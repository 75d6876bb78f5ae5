"""The WSGI application of the iris container: ``GET /ping`` and ``POST /invocations``.

Served by gunicorn (see :mod:`serve`) as ``app:create_app()``; each worker loads the model
from the model directory (``/opt/ml/model``, read-only) when it boots. ``/ping`` answers 200
only once the model is loaded, 503 with the reason otherwise (a failed load is retried at
most once a second, on the next ping or invocation).

Status codes: 400 malformed body, 406 unsupported Accept, 413 body too large, 415
unsupported Content-Type, 503 model not loaded. Error bodies are JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from flask import Flask, Response, request
from inference import (
    CSV,
    JSON,
    SUPPORTED_ACCEPT_TYPES,
    ModelNotReadyError,
    ModelService,
    RequestError,
    decode,
    encode,
)
from werkzeug.exceptions import HTTPException

log = logging.getLogger("iris")

DEFAULT_MODEL_DIR = "/opt/ml/model"
#: Bodies above this are refused with 413 (SageMaker itself caps real-time bodies at 6 MiB).
MAX_BODY_BYTES = 64 * 1024 * 1024


def _error(status: int, message: str) -> Response:
    return Response(
        response=json.dumps({"error": message}),
        status=status,
        content_type=JSON,
    )


def negotiate(accept_header: str | None, default: str) -> str | None:
    """Pick the response media type for ``accept_header``; None if none is acceptable.

    Missing/empty Accept or ``*/*`` mean ``default``. Media-type parameters other than ``q``
    (e.g. ``application/json; charset=utf-8``) are ignored; the most specific matching
    range decides an offer's quality; ties go to the default, then to JSON.
    """
    if not accept_header or not accept_header.strip():
        return default
    ranges: list[tuple[str, float]] = []
    for item in accept_header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))
    offers = [default, *(t for t in SUPPORTED_ACCEPT_TYPES if t != default)]
    best: tuple[float, str] | None = None
    for offer in offers:
        main_type = offer.split("/")[0]
        specificity, quality = -1, 0.0
        for media, q in ranges:
            if media == offer:
                rank = 2
            elif media == f"{main_type}/*":
                rank = 1
            elif media in ("*/*", "*"):
                rank = 0
            else:
                continue
            if rank > specificity:
                specificity, quality = rank, q
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, offer)
    return best[1] if best else None


def _configure_logging() -> None:
    gunicorn_logger = logging.getLogger("gunicorn.error")
    if gunicorn_logger.handlers:  # under gunicorn: same handlers, format and level
        log.handlers = gunicorn_logger.handlers
        log.setLevel(gunicorn_logger.level)
        log.propagate = False
    elif not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def create_app(model_dir: str | os.PathLike[str] | None = None) -> Flask:
    """Build the Flask app and start loading the model (model dir: argument, SM_MODEL_DIR,
    or /opt/ml/model)."""
    _configure_logging()
    directory = Path(model_dir or os.environ.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR)
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON).strip().lower()
    if default_accept not in SUPPORTED_ACCEPT_TYPES:
        log.warning(
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=%r is not supported; using %s",
            default_accept,
            JSON,
        )
        default_accept = JSON

    service = ModelService(directory)
    with contextlib.suppress(ModelNotReadyError):  # logged; /ping answers 503 until loaded
        service.load()

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.get("/ping")
    def ping() -> Response:
        try:
            service.load()
        except ModelNotReadyError as exc:
            return _error(503, f"model not loaded: {exc}")
        return Response(status=200, content_type="text/plain")

    @app.post("/invocations")
    def invocations() -> Response:
        content_type = request.mimetype  # lower-cased, parameters stripped
        if content_type not in (JSON, CSV):
            raise RequestError(
                415,
                f"unsupported Content-Type {request.content_type or '(none)'!r}; "
                f"supported: {JSON}, {CSV}",
            )
        accept = negotiate(request.headers.get("Accept"), default_accept)
        if accept is None:
            raise RequestError(
                406,
                f"cannot answer Accept {request.headers.get('Accept')!r}; "
                f"supported: {', '.join(SUPPORTED_ACCEPT_TYPES)} (or */*)",
            )
        try:
            model = service.load()
        except ModelNotReadyError as exc:
            return _error(503, f"model not loaded: {exc}")
        features = decode(
            request.get_data(cache=False),
            content_type,
            request.mimetype_params.get("charset"),
            model.n_features,
        )
        predictions = model.predict(features)
        return Response(encode(predictions, accept), status=200, content_type=accept)

    @app.errorhandler(RequestError)
    def request_error(exc: RequestError) -> Response:
        return _error(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(500, f"internal error: {type(exc).__name__}")

    return app
