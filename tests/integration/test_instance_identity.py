"""Traffic reaches only the endpoint's own containers (issue 11, defect 1).

An instance's container is killed under load while other containers are started at once
(they may be handed its freed bridge address): no request may be answered by one of them,
the dead instance leaves the rotation at once (Docker's exit event), and a replacement
takes its place.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.spec import build_spec
from tests.conftest import fixture_image
from tests.harness import RequestLoop, serving

pytestmark = pytest.mark.docker

# A server that answers every POST with 200 "impostor": if it ever answers, traffic reached
# a container that is not the endpoint's.
_IMPOSTOR = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "10")
        self.end_headers()
        self.wfile.write(b'"impostor"')
    do_POST = _answer
    do_GET = _answer
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def test_a_killed_instance_never_hands_its_traffic_to_another_container(
    docker_images: None, tmp_path: Path
) -> None:
    client = docker.from_env()
    spec = build_spec(
        name="identity",
        variants=[{"image": fixture_image("echo"), "instance_count": 2}],
    )
    settings = MonitorSettings(ping_interval_s=5.0)  # health checks alone would be too late
    impostors: list[Any] = []
    from smlocal.emulator.docker_backend import DockerBackend

    try:
        with serving(spec, DockerBackend(), tmp_path, settings=settings) as handle:
            assert handle.status == "InService"
            runtime = handle.runtime_client()
            counter = iter(range(10**9))

            def call() -> Any:
                n = next(counter)
                answer = runtime.invoke_endpoint(
                    EndpointName="identity",
                    Body=json.dumps({"n": n}),
                    ContentType="application/json",
                )
                return n, json.loads(answer["Body"].read())

            victim = client.containers.list(
                ignore_removed=True, filters={"label": "smlocal.endpoint=identity"}
            )[0]
            with RequestLoop(call) as loop, RequestLoop(call) as second:
                time.sleep(1.0)
                victim.kill()
                killed_at = time.monotonic()
                for _ in range(3):  # take whatever addresses are free now
                    impostors.append(
                        client.containers.run(
                            fixture_image("echo"),
                            ["python3", "-c", _IMPOSTOR],
                            detach=True,
                            labels={"smlocal.session": "test-impostor"},
                        )
                    )
                time.sleep(4.0)
            answers = loop.answers + second.answers
            failures = loop.failures + second.failures
            # Every answer is the echo of its own request: none from an impostor.
            assert all(body == {"n": n} for n, body in answers), [
                a for a in answers if a[1] != {"n": a[0]}
            ][:3]
            assert len(answers) > 100
            # Only the requests in flight on the killed container may fail.
            assert len(failures) <= 2, failures
            endpoint_containers = client.containers.list(
                ignore_removed=True, filters={"label": "smlocal.endpoint=identity"}
            )
            assert len(endpoint_containers) == 2  # replaced
            assert victim.id not in {c.id for c in endpoint_containers}
            assert time.monotonic() - killed_at < 10
    finally:
        for impostor in impostors:
            impostor.remove(force=True)
