"""GPU instance types ask Docker for the type's GPUs (issue 16), on real Docker.

An ``ml.g5.xlarge`` variant's container is started with a device request for its one NVIDIA
GPU when the host has GPUs. Where the engine cannot give them (no NVIDIA Container Toolkit, as
on this CI host, which the test makes look GPU-equipped), Docker refuses the request; the
endpoint still comes up, on CPU, with a warning naming the toolkit, and no container of the
refused attempt is left behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import docker
import pytest

from smlocal.emulator import endpoint as endpoint_module
from smlocal.emulator.backend import LABEL_ENDPOINT
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.instances import MonitorSettings
from smlocal.emulator.spec import build_spec
from tests.conftest import fixture_image
from tests.harness import serving

pytestmark = pytest.mark.docker


def test_a_gpu_type_requests_its_gpus_and_runs_on_cpu_where_docker_has_none(
    docker_backend: DockerBackend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(endpoint_module, "host_has_gpus", lambda: True)
    caplog.set_level(logging.WARNING, logger="smlocal.emulator.docker_backend")
    spec = build_spec(
        name="gpu-type",
        variants=[{"image": fixture_image("echo"), "instance_type": "ml.g5.xlarge"}],
    )
    # 4 vCPUs on a smaller host: capped, as the service caps them
    settings = MonitorSettings(host_cpus=os.cpu_count())
    with serving(spec, docker_backend, tmp_path, settings) as handle:
        assert handle.status == "InService", handle.sink.statuses
        engine = docker.from_env()
        (container,) = engine.containers.list(
            all=True, filters={"label": f"{LABEL_ENDPOINT}=gpu-type"}
        )
        requests = container.attrs["HostConfig"].get("DeviceRequests") or []
        if requests:  # an engine with the NVIDIA Container Toolkit: the GPU is passed through
            assert requests[0]["Count"] == 1 and requests[0]["Capabilities"] == [["gpu"]]
        else:
            warned = [r.getMessage() for r in caplog.records if "GPU" in r.getMessage()]
            assert warned and "NVIDIA Container Toolkit" in warned[0]
            assert "runs on CPU only" in warned[0]
        assert container.status == "running"
    leftovers = docker.from_env().containers.list(
        all=True, filters={"label": f"{LABEL_ENDPOINT}=gpu-type"}
    )
    assert leftovers == []
