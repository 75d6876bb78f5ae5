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
    home = tmp_path / "smlocal-home"
    monkeypatch.setenv("SMLOCAL_HOME", str(home))
    yield home
