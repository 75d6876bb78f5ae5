"""Container entry point: ``serve`` runs SageMaker's multi-model API on port 8080.

Routes (SageMaker's multi-model container contract; errors are JSON ``{"code", "type",
"message"}`` like awslabs/multi-model-server's):

``GET /ping``                        200 once the server runs
``POST /models``                     load ``{"model_name", "url"}``: 200, 409 already loaded,
                                     507 over ``MME_MAX_MODELS``, 400 bad request or files
``GET /models``                      ``{"models": [{"modelName", "modelUrl"}], "nextPageToken"}``
                                     (``limit``, ``next_page_token`` query parameters)
``GET /models/{name}``               ``{"modelName", "modelUrl"}``, 404 when not loaded
``DELETE /models/{name}``            unload: 200, 404 when not loaded
``POST /models/{name}/invoke``       predictions of that model (JSON ``{"instances": [...]}`` or
                                     CSV rows), 404 when not loaded
``POST /invocations``                400: a multi-model container is invoked per model

Settings (environment): ``SAGEMAKER_BIND_TO_PORT`` (default 8080), ``MME_MAX_MODELS`` (the
most models loaded at once; a load past it answers 507, as a server out of memory must, so
SageMaker unloads others; default: no limit), ``SAGEMAKER_MULTI_MODEL`` (logged; this image
serves only the multi-model API). SIGTERM stops it (exit 0).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from registry import BadRequest, Registry, RegistryError

log = logging.getLogger("mme")
USAGE = """\
usage: <image> serve

A SageMaker multi-model inference container: `docker run IMAGE serve` serves GET /ping and the
multi-model API (/models) on port 8080 (or $SAGEMAKER_BIND_TO_PORT)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # SageMaker bursts connections; the default 5 drops SYNs


def _handler(registry: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _answer(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, error: RegistryError) -> None:
            kind = type(error).__name__
            self._answer(
                error.status, {"code": error.status, "type": kind, "message": error.message}
            )

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.split("/") if p]
            body = self._body()
            try:
                if method == "GET" and parts == ["ping"]:
                    self._answer(200, {"status": "Healthy"})
                elif method == "POST" and parts == ["models"]:
                    self._load(body)
                elif method == "GET" and parts == ["models"]:
                    query = parse_qs(url.query)
                    limit = query.get("limit", [None])[0]
                    token = query.get("next_page_token", [None])[0]
                    self._answer(200, registry.page(limit, token))
                elif method == "GET" and len(parts) == 2 and parts[0] == "models":
                    self._answer(200, registry.get(parts[1]).describe())
                elif method == "DELETE" and len(parts) == 2 and parts[0] == "models":
                    registry.unload(parts[1])
                    self._answer(200, {"status": f'Model "{parts[1]}" unregistered'})
                elif method == "POST" and len(parts) == 3 and parts[::2] == ["models", "invoke"]:
                    content_type = (self.headers.get("Content-Type") or "").split(";")[0]
                    answer = registry.predict(parts[1], body, content_type.strip().lower())
                    target = self.headers.get("X-Amzn-SageMaker-Target-Model")
                    if target:
                        answer["target_model"] = target
                    self._answer(200, answer)
                elif method == "POST" and parts == ["invocations"]:
                    raise _bad("this is a multi-model container: POST /models/{name}/invoke")
                else:
                    self._answer(404, {"code": 404, "type": "NotFound", "message": self.path})
            except RegistryError as error:
                self._error(error)
            except Exception as error:  # a bug here must not kill the connection silently
                log.exception("%s %s failed", method, self.path)
                self._answer(
                    500, {"code": 500, "type": type(error).__name__, "message": str(error)}
                )

        def _load(self, body: bytes) -> None:
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                raise _bad('the body must be JSON {"model_name", "url"}') from None
            name, url = request.get("model_name"), request.get("url")
            if not isinstance(name, str) or not name:
                raise _bad("Parameter model_name is required.")
            if not isinstance(url, str) or not url:
                raise _bad("Parameter url is required.")
            registry.load(name, url)
            self._answer(200, {"status": f'Model "{name}" registered'})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


def _bad(message: str) -> RegistryError:
    return BadRequest(message)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(argv) != 2 or argv[1] != "serve":
        print(f"error: unsupported command: {' '.join(argv[1:]) or '(none)'}\n\n{USAGE}")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or 8080)
    raw_limit = (os.environ.get("MME_MAX_MODELS") or "").strip()
    registry = Registry(int(raw_limit) if raw_limit else None)
    server = _Server(("0.0.0.0", port), _handler(registry))

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    log.info(
        "serving the multi-model API on port %d (SAGEMAKER_MULTI_MODEL=%s, MME_MAX_MODELS=%s)",
        port,
        os.environ.get("SAGEMAKER_MULTI_MODEL", "unset"),
        raw_limit or "no limit",
    )
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
