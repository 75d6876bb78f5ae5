"""The WSGI application of the text-classification container: ``/ping`` and ``/invocations``.

Served by gunicorn (see :mod:`serve`) as ``app:create_app()``. Each worker starts loading
the model from the model directory (``/opt/ml/model``, read-only) in a background thread
when it boots; ``/ping`` answers 503 with the reason until then, 200 afterwards. An
invocation reaching a worker that is still loading waits for it (see
:class:`inference.ModelService`).

Status codes: 400 malformed body, wrong types or empty inputs; 406 unsupported Accept; 413
body too large; 415 unsupported Content-Type; 503 model not loaded. Error bodies are JSON
``{"error": "..."}``. A bad request never gets a 500.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from flask import Flask, Response, request
from inference import JSON, ModelNotReadyError, ModelService, RequestError, decode
from werkzeug.exceptions import HTTPException

log = logging.getLogger("textclf")

DEFAULT_MODEL_DIR = "/opt/ml/model"
#: Bodies above this are refused with 413 (SageMaker itself caps real-time bodies at 6 MiB).
MAX_BODY_BYTES = 64 * 1024 * 1024
#: How long an invocation waits for its worker's model still loading (SageMaker gives a
#: request 60 s in all).
LOAD_WAIT_S = 50.0


def _error(status: int, message: str) -> Response:
    return Response(response=json.dumps({"error": message}), status=status, content_type=JSON)


def accepts_json(accept_header: str | None) -> bool:
    """True if ``accept_header`` admits application/json (missing, ``*/*``, ``application/*``).

    JSON is the only answer type, so negotiation is a yes/no: any range that covers it with a
    quality above zero will do. Media-type parameters other than ``q`` are ignored.
    """
    if not accept_header or not accept_header.strip():
        return True
    for item in accept_header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() not in (JSON, "application/*", "*/*", "*"):
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


def _configure_logging() -> None:
    gunicorn_logger = logging.getLogger("gunicorn.error")
    if gunicorn_logger.handlers:  # under gunicorn: same handlers, format and level
        log.handlers = gunicorn_logger.handlers
        log.setLevel(gunicorn_logger.level)
        log.propagate = False
    elif not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def create_app(model_dir: str | os.PathLike[str] | None = None) -> Flask:
    """Build the Flask app and start loading the model in the background (model dir:
    argument, SM_MODEL_DIR, or /opt/ml/model)."""
    _configure_logging()
    service = ModelService(Path(model_dir or os.environ.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR))
    service.start()

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.get("/ping")
    def ping() -> Response:
        try:
            service.get()
        except ModelNotReadyError as exc:
            return _error(503, f"model not ready: {exc}")
        return Response(status=200, content_type="text/plain")

    @app.post("/invocations")
    def invocations() -> Response:
        if request.mimetype != JSON:  # lower-cased, parameters stripped
            raise RequestError(
                415,
                f"unsupported Content-Type {request.content_type or '(none)'!r}; send {JSON}",
            )
        if not accepts_json(request.headers.get("Accept")):
            raise RequestError(
                406, f"cannot answer Accept {request.headers.get('Accept')!r}; answers are {JSON}"
            )
        try:
            model = service.get(wait_s=LOAD_WAIT_S)
        except ModelNotReadyError as exc:
            return _error(503, f"model not ready: {exc}")
        parsed = decode(request.get_data(cache=False), request.mimetype_params.get("charset"))
        answer = model.classify(parsed)
        return Response(json.dumps(answer), status=200, content_type=JSON)

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
