"""The Docker backend's log stream (read a buffer at a time, paced) still carries every
line of stdout and stderr, in each stream's order, and honours ``since``."""

from __future__ import annotations

import time

import docker

from smlocal.emulator.docker_backend import DockerBackend
from tests.conftest import SKLEARN_IMAGE

PROGRAM = """
import sys, time
for i in range(300):
    print(f"out {i}", flush=True)
    if i % 3 == 0:
        print(f"err {i}", file=sys.stderr, flush=True)
    if i % 50 == 0:
        time.sleep(0.1)  # a trickle between bursts: the pump pauses, nothing is lost
print("x" * 100000, flush=True)  # a line longer than one read
"""


def test_follow_logs_carries_every_line_of_both_streams_in_order(docker_images: None) -> None:
    client = docker.from_env()
    container = client.containers.run(
        SKLEARN_IMAGE, entrypoint=["python3", "-c", PROGRAM], detach=True
    )
    try:
        started = time.time()
        chunks = list(DockerBackend().follow_logs(container.id))  # ends when the container does
        lines = b"".join(chunks).decode().splitlines()
        assert [line for line in lines if line.startswith("out")] == [
            f"out {i}" for i in range(300)
        ]
        assert [line for line in lines if line.startswith("err")] == [
            f"err {i}" for i in range(0, 300, 3)
        ]
        assert lines[-1] == "x" * 100000
        assert list(DockerBackend().follow_logs(container.id, since=started + 3600)) == []
    finally:
        container.remove(force=True)
