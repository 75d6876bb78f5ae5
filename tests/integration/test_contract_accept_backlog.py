"""A correct stdlib ThreadingHTTPServer (default listen backlog 5) in a container: the backlog is
read from its network namespace and a burst that overflows it is a warning, not a failure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from smlocal.contracts.model import Severity, Status
from smlocal.contracts.runner import SuiteOptions, run_suite
from smlocal.emulator.state import StateDir
from tests.conftest import fixture_image

pytestmark = pytest.mark.docker
IMAGE = "smlocal-fixture-test/stdlib-default-backlog:latest"
SERVER = """\
import signal, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(200 if self.path == "/ping" else 404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(200, body, self.headers.get("Content-Type") or "application/octet-stream")


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()  # backlog: the default 5
"""


@pytest.fixture(scope="module")
def stdlib_image(docker_images: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("stdlib-image")
    (context / "server.py").write_text(SERVER)
    (context / "Dockerfile").write_text(
        f"FROM {fixture_image('echo')}\n"
        "COPY server.py /opt/plain/server.py\n"
        'ENTRYPOINT ["python3", "/opt/plain/server.py"]\n'
    )
    subprocess.run(["docker", "build", "-q", "-t", IMAGE, str(context)], check=True)
    return IMAGE


def test_stdlib_default_backlog_is_a_warning_naming_the_backlog(
    stdlib_image: str, tmp_path: Path
) -> None:
    options = SuiteOptions(
        image=stdlib_image, only=frozenset({"ping.accept-latency"}), state=StateDir(tmp_path)
    )
    report = run_suite(options)
    result = report.result("ping.accept-latency")
    assert result is not None
    # A correct server is never failed. Whether 20 simultaneous connects overflow a backlog of
    # 5 depends on how fast its accept loop drains them on this run; when they do, it is a
    # warning that names the backlog (read with ss -ltn in its namespace).
    assert report.passed, result
    assert not result.is_error, result
    if result.status == Status.FAILED:
        assert result.severity == Severity.WARNING, result
        assert result.outcome.measurements["listen_backlog"] == 5
        assert "listen backlog 5" in result.outcome.summary


@pytest.mark.parametrize(("image", "status"), [("echo", Status.PASSED), ("slow-accept", None)])
def test_a_big_backlog_passes_and_a_slow_accept_loop_still_fails(
    docker_images: None, tmp_path: Path, image: str, status: Status | None
) -> None:
    options = SuiteOptions(
        image=fixture_image(image),
        only=frozenset({"ping.accept-latency"}),
        state=StateDir(tmp_path),
    )
    result = run_suite(options).result("ping.accept-latency")
    assert result is not None
    if status is not None:
        assert result.status == status, result
    else:
        assert result.is_error, result
        assert "accept loop does not keep up" in result.outcome.summary
