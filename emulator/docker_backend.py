"""The Docker implementation of :class:`emulator.backend.ContainerBackend` (docker SDK).

Owns every call to the Docker engine: starting a model container with SageMaker's shape
(``IMAGE serve``, model read-only at /opt/ml/model, CPU and memory limits, no privileges,
port 8080 published on the loopback address), reading its state and logs, and stopping it
the way SageMaker does (SIGTERM, then SIGKILL after the grace period).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import docker
import docker.errors

from smlocal.emulator.backend import (
    CONTAINER_PORT,
    ContainerRun,
    ContainerState,
    RunningContainer,
)
from smlocal.emulator.errors import BackendError, ImageNotFoundError

__all__ = ["DockerBackend"]

log = logging.getLogger(__name__)
MODEL_DIR = "/opt/ml/model"


class DockerBackend:
    def __init__(self, client: Any | None = None) -> None:
        self._client_override = client
        self._client_cached: Any | None = None

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        if self._client_cached is None:
            try:
                self._client_cached = docker.from_env()
                self._client_cached.ping()
            except docker.errors.DockerException as error:
                raise BackendError(
                    "cannot reach a Docker engine "
                    f"({error.__class__.__name__}: {error}). Start Docker (on Debian as root: "
                    "`bash scripts/ensure-docker.sh`) and check that `docker info` works."
                ) from None
        return self._client_cached

    def host_cpus(self) -> int:
        return int(self._client.info().get("NCPU", 1))

    def image_exists(self, image: str) -> bool:
        try:
            self._client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def local_image(self, reference: str) -> str | None:
        """The local image for ``REPO:TAG`` or ``REPO@sha256:...`` (an ECR URI's path part).

        A digest is matched against the local images' RepoDigests under any registry (a
        push to a local registry records ``HOST/REPO@DIGEST``); the image id is returned.
        """
        if "@" not in reference:
            return reference if self.image_exists(reference) else None
        repository, digest = reference.split("@", 1)
        for image in self._client.images.list():
            for repo_digest in image.attrs.get("RepoDigests") or []:
                name, _, found = str(repo_digest).partition("@")
                if found == digest and (name == repository or name.endswith("/" + repository)):
                    return str(image.id)
        return None

    def pull(self, reference: str) -> bool:
        """Pull ``reference`` (``HOST/REPO:TAG`` or ``HOST/REPO@sha256:...``); False if refused."""
        try:
            self._client.images.pull(reference)
        except docker.errors.APIError as error:
            log.info("pull of %s refused: %s", reference, error)
            return False
        return True

    def image_info(self, image: str) -> dict[str, Any]:
        try:
            attrs: dict[str, Any] = self._client.images.get(image).attrs
        except docker.errors.ImageNotFound:
            raise ImageNotFoundError(
                f"image {image!r} is not in the local Docker engine; build or pull it first"
            ) from None
        return attrs

    def start(self, run: ContainerRun) -> RunningContainer:
        self.image_info(run.image)
        volumes: dict[str, dict[str, str]] = {}
        if run.model_dir is not None:
            mode = "ro" if run.model_read_only else "rw"
            volumes[str(run.model_dir)] = {"bind": MODEL_DIR, "mode": mode}
        options: dict[str, Any] = {
            "command": list(run.command),
            "name": run.name,
            "environment": dict(run.env),
            "volumes": volumes,
            "labels": dict(run.labels),
            "nano_cpus": int(run.cpus * 1e9),
            "mem_limit": run.memory_bytes,
            # No swap: an instance's memory is all a model gets, as on SageMaker.
            "memswap_limit": run.memory_bytes,
            "privileged": False,
            "detach": True,
        }
        if run.network is not None:
            options["network"] = run.network
        else:
            options["ports"] = {f"{run.container_port}/tcp": (run.host_ip, None)}
        try:
            container = self._client.containers.run(run.image, **options)
        except docker.errors.ImageNotFound:
            raise ImageNotFoundError(f"image {run.image!r} not found") from None
        except docker.errors.APIError as error:
            raise BackendError(
                f"Docker refused to start {run.image!r}: {error.explanation}"
            ) from None
        container.reload()
        direct = self._bridge(container.attrs, run.container_port)
        published = self._published(container.attrs, run.host_ip, run.container_port)
        if run.network is not None and direct is not None:
            published = direct  # nothing is published on a custom network: use its address
        return RunningContainer(id=container.id, name=run.name, published=published, direct=direct)

    @staticmethod
    def _published(
        attrs: Mapping[str, Any], host_ip: str, port: int = CONTAINER_PORT
    ) -> tuple[str, int]:
        bindings = (attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp")
        if not bindings:
            return (host_ip, 0)
        return (host_ip, int(bindings[0]["HostPort"]))

    @staticmethod
    def _bridge(attrs: Mapping[str, Any], port: int = CONTAINER_PORT) -> tuple[str, int] | None:
        for network in (attrs["NetworkSettings"].get("Networks") or {}).values():
            if network.get("IPAddress"):
                return (str(network["IPAddress"]), port)
        return None

    def _container(self, container_id: str) -> Any:
        try:
            return self._client.containers.get(container_id)
        except docker.errors.NotFound:
            raise BackendError(f"container {container_id[:12]} no longer exists") from None

    def state(self, container_id: str) -> ContainerState:
        attrs = self._container(container_id).attrs["State"]
        running = bool(attrs.get("Running"))
        return ContainerState(
            running=running,
            exit_code=None if running else int(attrs.get("ExitCode", -1)),
            oom_killed=bool(attrs.get("OOMKilled")),
            error=str(attrs.get("Error") or ""),
        )

    def oom_kills(self, container_id: str) -> int | None:
        """Processes the kernel OOM-killed in a running container's cgroup (None: unknown).

        Docker's OOMKilled flag covers only the main process; a worker killed while its parent
        lives on shows up here (cgroup v2 ``memory.events``, v1 ``memory.oom_control``).
        """
        try:
            result = self._container(container_id).exec_run(
                ["cat", "/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"]
            )
        except (BackendError, docker.errors.APIError):
            return None
        for line in bytes(result.output or b"").decode(errors="replace").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    def logs(self, container_id: str, tail: int = 50) -> str:
        try:
            raw: bytes = self._container(container_id).logs(tail=tail)
        except BackendError:
            return ""
        return raw.decode(errors="replace")

    def follow_logs(self, container_id: str) -> Iterator[bytes]:
        stream: Iterator[bytes] = self._container(container_id).logs(stream=True, follow=True)
        return stream

    def stop(self, container_id: str, timeout_s: float = 30.0) -> None:
        # docker stop = SIGTERM, then SIGKILL after the timeout: SageMaker's own sequence.
        try:
            self._container(container_id).stop(timeout=int(timeout_s))
        except BackendError:
            return
        except docker.errors.APIError as error:
            log.warning("stopping %s failed: %s", container_id[:12], error)

    def remove(self, container_id: str) -> None:
        try:
            self._container(container_id).remove(force=True)
        except (BackendError, docker.errors.NotFound):
            return
        except docker.errors.APIError as error:
            log.warning("removing %s failed: %s", container_id[:12], error)

    def find(self, labels: Mapping[str, str]) -> list[str]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        return [c.id for c in self._client.containers.list(all=True, filters=filters)]
