"""Shared pytest fixtures. Docker-marked tests build the images they need (idempotent, cached)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKLEARN_IMAGE = "smlocal/sklearn-iris:latest"
SKLEARN_MODEL = REPO / "containers" / "sklearn" / "build" / "model.tar.gz"


def fixture_image(name: str) -> str:
    return f"smlocal-fixture/{name}:latest"


@pytest.fixture(scope="session")
def docker_images() -> None:
    """The reference and fixture images; `make test` built them already, so this is quick."""
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "sklearn-image", "fixtures"],
        check=True,
    )


@pytest.fixture(scope="session")
def docker_backend(docker_images: None) -> object:
    from smlocal.emulator.docker_backend import DockerBackend

    return DockerBackend()


@pytest.fixture()
def smlocal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh SMLOCAL_HOME; afterwards, a service a test left running there (e.g. the one
    `serve --detach` starts) is stopped, and none of its containers may remain."""
    home = tmp_path / "smlocal-home"
    monkeypatch.setenv("SMLOCAL_HOME", str(home))
    yield home
    stop_service(home)


def stop_service(home: Path, timeout_s: float = 90) -> None:
    """Stop the service of ``home`` if one runs, then check it left no container behind."""
    import os
    import signal
    import time

    from smlocal.emulator.service.process import read_service_record
    from smlocal.emulator.state import StateDir

    state = StateDir(home)
    record = read_service_record(state)
    if record is not None:
        os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while read_service_record(state) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert read_service_record(state) is None, f"the service {record.pid} did not stop"
    id_file = home / "service" / "id"
    if id_file.exists():
        import docker

        label = f"smlocal.session={id_file.read_text().strip()}"
        left = docker.from_env().containers.list(
            ignore_removed=True, all=True, filters={"label": label}
        )
        assert not left, [f"{c.name} {c.status}" for c in left]
