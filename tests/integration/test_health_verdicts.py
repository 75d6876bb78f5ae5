"""Each fixture image proves one health verdict on real Docker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import docker
import pytest

from smlocal.emulator.backend import LABEL_ENDPOINT, ContainerRun
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.errors import EndpointFailedError
from smlocal.emulator.health import WaitStrategy, wait_until_healthy
from smlocal.emulator.spec import build_spec
from tests.conftest import fixture_image
from tests.harness import serving


def _wait(
    backend: DockerBackend, image: str, deadline_s: float, model_dir: Path | None = None
) -> float:
    run = ContainerRun(
        image=image,
        name=f"smlocal-test-verdict-{time.time_ns()}",
        model_dir=model_dir,
        env={},
        cpus=1,
        memory_bytes=512 * 1024**2,
        labels={LABEL_ENDPOINT: "health-verdicts"},
    )
    container = backend.start(run)

    async def wait() -> float:
        async with aiohttp.ClientSession() as session:
            return await wait_until_healthy(
                backend, container, WaitStrategy(deadline_s=deadline_s), session
            )

    try:
        return asyncio.run(wait())
    finally:
        backend.stop(container.id, 1)
        backend.remove(container.id)


def test_echo_fixture_is_healthy(docker_backend: DockerBackend) -> None:
    assert _wait(docker_backend, fixture_image("echo"), 30) < 10


def test_ping_taking_3_seconds_fails_health(docker_backend: DockerBackend) -> None:
    with pytest.raises(EndpointFailedError) as caught:
        _wait(docker_backend, fixture_image("slow-ping"), 6)
    assert "no answer within 2 s" in str(caught.value)


def test_exit_at_start_is_reported_within_seconds_with_its_code(
    docker_backend: DockerBackend,
) -> None:
    started = time.monotonic()
    with pytest.raises(EndpointFailedError) as caught:
        _wait(docker_backend, fixture_image("exit-at-start"), 60)
    assert time.monotonic() - started < 3.0
    assert caught.value.exit_status == 3
    assert "failing on purpose" in caught.value.logs


def test_container_that_never_listens_fails_at_the_window(docker_backend: DockerBackend) -> None:
    started = time.monotonic()
    with pytest.raises(EndpointFailedError) as caught:
        _wait(docker_backend, fixture_image("never-listens"), 4)
    assert time.monotonic() - started >= 4
    assert "startup window" in str(caught.value)


def test_model_directory_is_read_only_for_the_container(
    docker_backend: DockerBackend, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\0" * 16)
    spec = build_spec(
        name="writes-model",
        variants=[{"image": fixture_image("writes-model"), "model": str(model)}],
    )
    with serving(spec, docker_backend, tmp_path / "home") as handle:
        assert handle.status == "Failed"
    assert handle.result is not None
    assert handle.result.exit_status == 4
    assert "Read-only file system" in handle.result.failure_logs
    assert not (model / "written-by-container").exists()


def test_unhealthy_instance_is_replaced_and_the_old_one_removed(
    docker_backend: DockerBackend, tmp_path: Path
) -> None:
    spec = build_spec(name="flaky", variants=[{"image": fixture_image("flaky-ping")}])
    settings = MonitorSettings(ping_interval_s=0.3, unhealthy_after=2)
    client = docker.from_env()
    with serving(spec, docker_backend, tmp_path, settings) as handle:
        assert handle.status == "InService"
        first = {
            c.id
            for c in client.containers.list(
                ignore_removed=True, filters={"label": f"{LABEL_ENDPOINT}=flaky"}
            )
        }
        deadline = time.monotonic() + 30
        replaced = False
        while time.monotonic() < deadline and not replaced:
            now = {
                c.id
                for c in client.containers.list(
                    ignore_removed=True, filters={"label": f"{LABEL_ENDPOINT}=flaky"}
                )
            }
            replaced = bool(now - first) and not (now & first)
            time.sleep(0.2)
        assert replaced, "the unhealthy container was not replaced"
    assert not client.containers.list(
        ignore_removed=True, all=True, filters={"label": f"{LABEL_ENDPOINT}=flaky"}
    )
