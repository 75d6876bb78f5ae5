"""The ``ContainerBackend`` protocol: what the emulator needs from a container engine.

The real implementation is :mod:`emulator.docker_backend`; unit tests use an in-memory fake.
Methods are blocking (the Docker SDK is); async callers run them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "ISOLATED_NETWORK",
    "LABEL_ENDPOINT",
    "LABEL_FLEET",
    "LABEL_INSTANCE",
    "LABEL_NETWORK",
    "LABEL_SESSION",
    "LABEL_VARIANT",
    "ContainerBackend",
    "ContainerInfo",
    "ContainerRun",
    "ContainerState",
    "RunningContainer",
]

# Everything smlocal starts carries these labels, so stop/cleanup find exactly what it made.
LABEL_ENDPOINT = "smlocal.endpoint"
LABEL_SESSION = "smlocal.session"
LABEL_VARIANT = "smlocal.variant"
LABEL_INSTANCE = "smlocal.instance"
# What the container runs (a hash of its endpoint and variant, weight and count aside): a
# restarted service adopts a running container only when this still matches what is deployed.
LABEL_FLEET = "smlocal.fleet"
# EnableNetworkIsolation: the Docker network such a container joins, alone. The backend makes
# it on first use (internal, no traffic between its containers, labelled LABEL_NETWORK=isolated)
# and reuses it; the host reaches a container there on its address in the network.
ISOLATED_NETWORK = "smlocal-isolated"
LABEL_NETWORK = "smlocal.network"

CONTAINER_PORT = 8080


@dataclass(frozen=True)
class ContainerRun:
    """How to start one model container, SageMaker style."""

    image: str
    name: str
    model_dir: Path | None
    env: Mapping[str, str]
    cpus: float
    memory_bytes: int
    labels: Mapping[str, str]
    command: tuple[str, ...] = ("serve",)
    host_ip: str = "127.0.0.1"
    # SageMaker always mounts the model read-only; contract tests turn this off only to tell
    # "needs a writable model directory" apart from other startup failures.
    model_read_only: bool = True
    # Join this Docker network instead of the default bridge, with no published port (e.g. an
    # internal network, for EnableNetworkIsolation). The container is then reached on its
    # address in that network, which works where the host routes to it (Linux).
    network: str | None = None
    # The port the server listens on inside the container: published, and used for the bridge
    # address. 8080 unless the run sets SAGEMAKER_BIND_TO_PORT (inference pipelines).
    container_port: int = CONTAINER_PORT
    # A multi-model endpoint's models directory, mounted read-only at /opt/ml/models; the
    # service fills it while the container runs.
    models_dir: Path | None = None
    # NVIDIA GPUs to pass through: the instance type's, when the host has GPUs.
    gpus: int = 0


@dataclass(frozen=True)
class RunningContainer:
    """A started container and the addresses its server port (8080 by default) answers on."""

    id: str
    name: str
    published: tuple[str, int]
    # The container's own bridge address: skips Docker's userland proxy where the host can
    # route to it (Linux); absent or unreachable on Docker Desktop.
    direct: tuple[str, int] | None


@dataclass(frozen=True)
class ContainerState:
    running: bool
    exit_code: int | None
    oom_killed: bool
    error: str = ""


@dataclass(frozen=True)
class ContainerInfo:
    """A container found by label, as a restarted service sees it: how to reach it, its
    labels, and whether it still runs."""

    container: RunningContainer
    labels: Mapping[str, str]
    running: bool


class ContainerBackend(Protocol):
    def start(self, run: ContainerRun) -> RunningContainer: ...

    def state(self, container_id: str) -> ContainerState: ...

    def logs(self, container_id: str, tail: int = 50) -> str: ...

    def follow_logs(self, container_id: str, since: float | None = None) -> Iterator[bytes]:
        """The container's output as it comes; with ``since`` (epoch seconds), only what it
        wrote from then on (an adopted container's earlier lines were already read)."""
        ...

    def stop(self, container_id: str, timeout_s: float = 30.0) -> None: ...

    def remove(self, container_id: str) -> None: ...

    def find(self, labels: Mapping[str, str]) -> list[str]: ...

    def inspect(self, container_id: str) -> ContainerInfo:
        """A container found by label, for adoption. Raises BackendError when it is gone."""
        ...
