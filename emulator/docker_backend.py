"""The Docker implementation of :class:`emulator.backend.ContainerBackend` (docker SDK).

Owns every call to the Docker engine: starting a model container with SageMaker's shape
(``IMAGE serve``, model read-only at /opt/ml/model, CPU and memory limits, no privileges,
port 8080 published on the loopback address), reading its state and logs, and stopping it
the way SageMaker does (SIGTERM, then SIGKILL after the grace period).

Every container is hardened like an instance: at most :data:`PIDS_LIMIT` processes and
threads, ``no-new-privileges``, and no container but the host's smlocal can reach it: it
joins :data:`SERVING_NETWORK` (a bridge with inter-container traffic off; Docker keeps other
networks, the default bridge included, from reaching it) with its port published on the
loopback address, as before.

EnableNetworkIsolation (a run on :data:`~emulator.backend.ISOLATED_NETWORK`): the container
joins only a Docker network made ``internal`` (no route out of the host) with inter-container
traffic off, and nothing is published (Docker publishes no port on an internal network); the
host reaches it on its address there. Docker's internal networks still let a container open
connections to the host's *own* addresses (the bridge gateway, eth0, docker0: the kernel's
INPUT path, which Docker does not filter), so on Linux the backend also adds one host firewall
rule, ``iptables -I INPUT -i <bridge> -m conntrack --ctstate NEW -j REJECT``: new connections
from the network to the host are refused, the replies to the host's own calls still pass.
Adding it needs root (CAP_NET_ADMIN) and iptables; without them a warning says what is open.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import docker
import docker.errors
import docker.types

from smlocal.emulator.backend import (
    CONTAINER_PORT,
    ISOLATED_NETWORK,
    LABEL_NETWORK,
    ContainerInfo,
    ContainerRun,
    ContainerState,
    RunningContainer,
)
from smlocal.emulator.docker_logs import follow_output
from smlocal.emulator.errors import BackendError, ImageNotFoundError
from smlocal.emulator.log_files import paced

__all__ = ["PIDS_LIMIT", "SERVING_NETWORK", "DockerBackend"]

log = logging.getLogger(__name__)
MODEL_DIR = "/opt/ml/model"
MODELS_DIR = "/opt/ml/models"  # a multi-model endpoint's (reference §D.1)
# The isolated network's Linux bridge, named so the firewall rule can name it.
ISOLATED_BRIDGE = "smlocal-iso0"
_NO_ICC = "com.docker.network.bridge.enable_icc"
# Every other model container's network: a bridge like Docker's default one (published ports,
# a route out) but with traffic between its containers off, so only the host reaches them.
SERVING_NETWORK = "smlocal-serving"
SERVING_BRIDGE = "smlocal-srv0"
# A process table bound per container (threads count): a fork bomb stops there, a model
# server's workers and threads fit. SageMaker's own figure is not published.
PIDS_LIMIT = 4096
# What the engine answers a GPU request it has no driver for.
_NO_GPU_DRIVER = "could not select device driver"


class DockerBackend:
    def __init__(self, client: Any | None = None) -> None:
        self._client_override = client
        self._client_cached: Any | None = None
        self._isolated_ready = False
        self._serving_ready = False
        self._isolated_lock = threading.Lock()

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
        if run.models_dir is not None:
            volumes[str(run.models_dir)] = {"bind": MODELS_DIR, "mode": "ro"}
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
            # Hardened like an instance: a bounded process table, no privilege gained by
            # setuid binaries or file capabilities.
            "pids_limit": PIDS_LIMIT,
            "security_opt": ["no-new-privileges:true"],
            "detach": True,
        }
        if run.network == ISOLATED_NETWORK:
            self.ensure_isolated_network()
        if run.network is not None:
            options["network"] = run.network
        else:
            # Not the default bridge: another container there (or of another endpoint) could
            # reach this one's address; on the serving network only the host can.
            options["network"] = self.ensure_serving_network()
            options["ports"] = {f"{run.container_port}/tcp": (run.host_ip, None)}
        if run.gpus:
            options["device_requests"] = [
                docker.types.DeviceRequest(count=run.gpus, capabilities=[["gpu"]])
            ]
        try:
            container = self._run_with_gpus_or_without(run, options)
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
            published = direct  # nothing is published on an internal network: use its address
        return RunningContainer(id=container.id, name=run.name, published=published, direct=direct)

    def _run_with_gpus_or_without(self, run: ContainerRun, options: dict[str, Any]) -> Any:
        """``docker run``; when the engine cannot give GPUs (no NVIDIA Container Toolkit),
        the container it created is removed and started again on CPU, with a warning."""
        try:
            return self._client.containers.run(run.image, **options)
        except docker.errors.APIError as error:
            if "device_requests" not in options or _NO_GPU_DRIVER not in str(error.explanation):
                raise
        log.warning(
            "%s: Docker cannot pass %d GPU(s) through here (%s; install the NVIDIA Container "
            "Toolkit): the container runs on CPU only",
            run.name,
            run.gpus,
            _NO_GPU_DRIVER,
        )
        with contextlib.suppress(docker.errors.NotFound):
            self._client.containers.get(run.name).remove(force=True)
        options = {k: v for k, v in options.items() if k != "device_requests"}
        return self._client.containers.run(run.image, **options)

    def ensure_isolated_network(self) -> str:
        """Make (once) and return the network EnableNetworkIsolation containers join."""
        with self._isolated_lock:
            if not self._isolated_ready:
                bridge = self._isolated_network()
                _refuse_new_connections_to_host(bridge)
                self._isolated_ready = True
        return ISOLATED_NETWORK

    def ensure_serving_network(self) -> str:
        """Make (once) and return the network every other model container joins."""
        with self._isolated_lock:
            if not self._serving_ready:
                self._network(SERVING_NETWORK, "serving", internal=False, bridge=SERVING_BRIDGE)
                self._serving_ready = True
        return SERVING_NETWORK

    def _network(self, name: str, label: str, *, internal: bool, bridge: str) -> None:
        """Create ``name`` (a bridge with traffic between its containers off) unless a network
        of that name carries our label and the same settings already."""
        found = self._client.networks.list(names=[name])
        network = next((n for n in found if n.name == name), None)
        if network is not None:
            attrs = network.attrs
            ours = (attrs.get("Labels") or {}).get(LABEL_NETWORK) == label
            icc = (attrs.get("Options") or {}).get(_NO_ICC)
            if ours and icc == "false" and bool(attrs.get("Internal")) == internal:
                return
            raise BackendError(
                f"the Docker network {name!r} exists but is not the one smlocal makes (label "
                f"{LABEL_NETWORK}={label}, traffic between containers off): remove it "
                f"(`docker network rm {name}`) and smlocal makes a proper one"
            )
        try:
            self._client.networks.create(
                name,
                driver="bridge",
                internal=internal,
                labels={LABEL_NETWORK: label},
                options={_NO_ICC: "false", "com.docker.network.bridge.name": bridge},
            )
        except docker.errors.APIError as error:
            if not self._client.networks.list(names=[name]):  # not made by a racing call
                raise BackendError(
                    f"cannot create the Docker network {name!r}: {error.explanation}"
                ) from None

    def _isolated_network(self) -> str:
        """The isolated network's bridge interface, creating the network if need be."""
        found = self._client.networks.list(names=[ISOLATED_NETWORK])
        network = next((n for n in found if n.name == ISOLATED_NETWORK), None)
        if network is not None:
            attrs = network.attrs
            if not attrs.get("Internal"):
                raise BackendError(
                    f"the Docker network {ISOLATED_NETWORK!r} exists but is not internal, so "
                    "a container on it could reach the outside: remove it "
                    f"(`docker network rm {ISOLATED_NETWORK}`) and smlocal makes a proper one"
                )
            options = attrs.get("Options") or {}
            ours = (attrs.get("Labels") or {}).get(LABEL_NETWORK) == "isolated"
            if not ours and not attrs.get("Containers"):
                # An older smlocal's network (containers could talk to each other): replace it.
                network.remove()
                network = None
            else:
                return str(options.get("com.docker.network.bridge.name") or f"br-{network.id[:12]}")
        try:
            self._client.networks.create(
                ISOLATED_NETWORK,
                driver="bridge",
                internal=True,
                labels={LABEL_NETWORK: "isolated"},
                options={_NO_ICC: "false", "com.docker.network.bridge.name": ISOLATED_BRIDGE},
            )
        except docker.errors.APIError as error:
            if not self._client.networks.list(names=[ISOLATED_NETWORK]):
                raise BackendError(
                    f"cannot create the Docker network {ISOLATED_NETWORK!r} for "
                    f"EnableNetworkIsolation: {error.explanation}"
                ) from None
        return ISOLATED_BRIDGE

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

    def cpu_seconds(self, container_id: str) -> float:
        """CPU seconds (user + system) the container's processes have used so far.

        Docker's own stats (the cgroup's usage), one-shot so the call does not wait a second
        for a second sample; for load-test CPU accounting, not part of the backend protocol.
        """
        try:
            stats = self._container(container_id).stats(stream=False, one_shot=True)
        except docker.errors.APIError as error:
            raise BackendError(f"no CPU figures for {container_id[:12]}: {error}") from None
        return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9

    def cpu_limit(self, container_id: str) -> float | None:
        """The container's CPU limit in cores (``--cpus``); None when it has none."""
        nano = int(self._container(container_id).attrs["HostConfig"].get("NanoCpus") or 0)
        return nano / 1e9 if nano else None

    def logs(self, container_id: str, tail: int = 50) -> str:
        try:
            raw: bytes = self._container(container_id).logs(tail=tail)
        except BackendError:
            return ""
        return raw.decode(errors="replace")

    def follow_logs(self, container_id: str, since: float | None = None) -> Iterator[bytes]:
        # A line per request must cost neither a wake-up of the pump nor a frame read each.
        return paced(follow_output(self._container(container_id), since))

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

    def watch_exits(
        self, labels: Mapping[str, str], on_exit: Callable[[str], None]
    ) -> Callable[[], None]:
        """Call ``on_exit(container_id)`` from a thread the moment a container carrying
        ``labels`` dies (Docker's event stream), so traffic leaves it before its address can
        be handed to another container. Returns the function that stops watching."""
        filters = {
            "type": "container",
            "event": ["die"],
            "label": [f"{key}={value}" for key, value in labels.items()],
        }
        stream = self._client.events(decode=True, filters=filters)

        def pump() -> None:
            try:
                for event in stream:
                    container_id = event.get("id") or (event.get("Actor") or {}).get("ID")
                    if container_id:
                        on_exit(str(container_id))
            except Exception as error:  # closed, or the engine went away: nothing to watch
                log.debug("docker event stream ended: %s", error)

        threading.Thread(target=pump, name="docker-exits", daemon=True).start()
        return stream.close  # type: ignore[no-any-return]

    def find(self, labels: Mapping[str, str]) -> list[str]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        return [c.id for c in self._client.containers.list(all=True, filters=filters)]

    def inspect(self, container_id: str) -> ContainerInfo:
        """A container found by label: its addresses as :meth:`start` gave them (the server
        port is 8080 unless its environment sets SAGEMAKER_BIND_TO_PORT), its labels, and
        whether it runs."""
        attrs = self._container(container_id).attrs
        config = attrs.get("Config") or {}
        env = dict(str(item).partition("=")[::2] for item in config.get("Env") or [])
        port_text = env.get("SAGEMAKER_BIND_TO_PORT", "")
        port = int(port_text) if port_text.isdigit() else CONTAINER_PORT
        bindings = (attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp") or []
        host_ip = str(bindings[0].get("HostIp") or "") if bindings else ""
        if host_ip in ("", "0.0.0.0", "::"):  # noqa: S104 - an address read, not bound
            host_ip = "127.0.0.1"
        direct = self._bridge(attrs, port)
        published = self._published(attrs, host_ip, port)
        if not bindings and direct is not None:
            published = direct  # a container on a custom network: reached on its address
        name = str(attrs.get("Name") or container_id[:12]).lstrip("/")
        return ContainerInfo(
            container=RunningContainer(container_id, name, published, direct),
            labels=dict(config.get("Labels") or {}),
            running=bool((attrs.get("State") or {}).get("Running")),
        )


def _refuse_new_connections_to_host(bridge: str) -> None:
    """Refuse new connections from ``bridge`` to the host itself (idempotent)."""
    rule = ["INPUT", "-i", bridge, "-m", "conntrack", "--ctstate", "NEW", "-j", "REJECT"]
    iptables = shutil.which("iptables") or shutil.which("iptables", path="/usr/sbin:/sbin")
    if iptables is None:
        log.warning(
            "no iptables: containers with EnableNetworkIsolation can still open connections "
            "to this host's own addresses (not to other hosts)"
        )
        return
    try:
        present = subprocess.run(
            [iptables, "-w", "-C", *rule], capture_output=True, check=False, timeout=30
        )
        if present.returncode == 0:
            return
        added = subprocess.run(
            [iptables, "-w", "-I", *rule], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        added = subprocess.CompletedProcess([], 1, "", str(error))
    if added.returncode != 0:
        log.warning(
            "could not add the firewall rule `iptables -I %s` (%s; it needs root): containers "
            "with EnableNetworkIsolation can still open connections to this host's own "
            "addresses (not to other hosts)",
            " ".join(rule),
            added.stderr.strip() or f"exit code {added.returncode}",
        )
