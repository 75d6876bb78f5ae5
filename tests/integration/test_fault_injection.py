"""Fault injection under load (issue 11, "What must hold"), bounded and local, on real Docker.

Sixteen requests stay in flight on a two-instance endpoint while, at once: one instance's
container is killed; containers that may take its freed address start on smlocal's serving
network and on Docker's default bridge (each answers every request with "impostor"); and
misbehaving clients connect: some send half a header block and stall, some send half a body
and vanish. What must hold: no answer comes from a container that is not the endpoint's, none
is lost (every request is answered or fails, and only requests in flight on the killed
instance may fail), the half-sent bodies are never forwarded, the instance is replaced, and
the endpoint serves as before.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from smlocal.emulator.docker_backend import SERVING_NETWORK, DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.spec import build_spec
from tests.conftest import fixture_image
from tests.harness import RequestLoop, serving

pytestmark = pytest.mark.docker

IN_FLIGHT = 16
TRUNCATED_AT = 4000  # the loops' bodies are ~10 bytes: a forwarded part would stand out
_IMPOSTOR = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "10")
        self.end_headers()
        self.wfile.write(b'"impostor"')
    do_POST = do_GET = _answer
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def _misbehave(host: str, port: int) -> list[socket.socket]:
    """Three clients that stall mid-header and three that leave mid-body."""
    held = []
    for _ in range(3):
        stalled = socket.create_connection((host, port))
        stalled.sendall(b"POST /endpoints/faults/invocations HTTP/1.1\r\nHost: x\r\nContent-")
        held.append(stalled)
        with socket.create_connection((host, port)) as gone:  # 4000 of 5000 bytes, then gone
            gone.sendall(
                b"POST /endpoints/faults/invocations HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
                + b"x"
                * TRUNCATED_AT
            )
    return held


def test_kill_impostors_and_bad_clients_under_load(docker_images: None, tmp_path: Path) -> None:
    engine = docker.from_env()
    spec = build_spec(
        name="faults",
        variants=[
            {
                "image": fixture_image("echo"),
                "instance_count": 2,
                "env": {"FIXTURE_LOG_REQUESTS": "1"},  # a log line per request, with its size
            }
        ],
    )
    settings = MonitorSettings(ping_interval_s=5.0)  # health checks alone would be too late
    started: list[Any] = []
    held: list[socket.socket] = []
    try:
        with serving(spec, DockerBackend(), tmp_path, settings=settings) as handle:
            assert handle.status == "InService"
            runtime = handle.runtime_client()
            host, port = handle.url.removeprefix("http://").split(":")
            counter = iter(range(10**9))

            def call() -> Any:
                n = next(counter)
                answer = runtime.invoke_endpoint(
                    EndpointName="faults", Body=json.dumps({"n": n}), ContentType="application/json"
                )
                return n, json.loads(answer["Body"].read())

            def mine() -> list[Any]:
                return engine.containers.list(
                    ignore_removed=True, filters={"label": "smlocal.endpoint=faults"}
                )

            victim = mine()[0]
            loops = [RequestLoop(call) for _ in range(IN_FLIGHT)]
            for loop in loops:
                loop.__enter__()
            try:
                time.sleep(1.5)
                victim.kill()
                killed_at = time.monotonic()
                for network in (SERVING_NETWORK, "bridge") * 2:  # whatever addresses are free
                    started.append(
                        engine.containers.run(
                            fixture_image("echo"),
                            ["python3", "-c", _IMPOSTOR],
                            detach=True,
                            network=network,
                            labels={"smlocal.session": "test-fault-injection"},
                        )
                    )
                held = _misbehave(host, int(port))
                time.sleep(5.0)
            finally:
                for loop in loops:
                    loop.__exit__()
            answers = [a for loop in loops for a in loop.answers]
            failures = [f for loop in loops for f in loop.failures]
            assert all(body == {"n": n} for n, body in answers), [
                a for a in answers if a[1] != {"n": a[0]}
            ][:3]
            assert len(answers) > 200
            # none lost: every request the loops sent is answered or failed, exactly once
            sent = next(counter)
            assert len({n for n, _ in answers}) == len(answers)
            assert len(answers) + len(failures) == sent
            assert len(failures) <= IN_FLIGHT, failures  # at most those in flight on the victim
            replaced = mine()
            assert len(replaced) == 2 and victim.id not in {c.id for c in replaced}
            assert time.monotonic() - killed_at < 15
            # the half-sent bodies never reached a container: no request of their size
            sizes = [
                int(line.rsplit(" ", 1)[-1])
                for container in replaced
                for line in container.logs().decode(errors="replace").splitlines()
                if '"POST /invocations' in line and line.rsplit(" ", 1)[-1].isdigit()
            ]
            assert sizes and max(sizes) < TRUNCATED_AT
            # and the endpoint serves as before
            n, body = call()
            assert body == {"n": n}
    finally:
        for sock in held:
            sock.close()
        for container in started:
            container.remove(force=True)
