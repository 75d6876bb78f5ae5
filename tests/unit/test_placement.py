"""What the host cannot give an instance type: said at once, never silently (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest

from smlocal.emulator.placement import placement_warnings
from smlocal.emulator.spec import build_spec

HOST = {"host_cpus": 2, "host_memory_bytes": 24 * 1024**3, "gpus_here": False}


def _amd64(_image: str) -> dict[str, Any]:
    return {"Architecture": "amd64"}


def _warnings(instance_type: str, image_info: Any = _amd64, **host: Any) -> list[str]:
    spec = build_spec(name="e", variants=[{"image": "i:1", "instance_type": instance_type}])
    return placement_warnings(spec, image_info, **{**HOST, **host})


def test_a_type_this_host_can_give_gets_no_word() -> None:
    assert _warnings("ml.m5.large") == []


def test_a_gpu_type_on_a_host_without_gpus_is_said_and_with_gpus_is_not() -> None:
    (gpu, *_rest) = _warnings("ml.g5.xlarge")
    assert "NVIDIA A10G" in gpu and "this host has no GPU" in gpu
    assert not any("GPU" in w for w in _warnings("ml.g5.xlarge", gpus_here=True))


def test_graviton_with_an_amd64_image_is_said() -> None:
    (arch,) = _warnings("ml.c7g.large")
    assert "arm64 (Graviton)" in arch and "i:1 is amd64" in arch
    arm_image = _warnings("ml.c7g.large", image_info=lambda _i: {"Architecture": "arm64"})
    assert arm_image == []


@pytest.mark.parametrize("instance_type", ["ml.m5.24xlarge", "ml.r5.12xlarge"])
def test_more_cpu_or_memory_than_the_host_is_said(instance_type: str) -> None:
    said = " ".join(_warnings(instance_type))
    assert "this host has 2: the container gets 2" in said
    assert "GiB of memory; this host has 24 GiB" in said


def test_an_image_it_cannot_inspect_is_not_judged() -> None:
    def missing(_image: str) -> dict[str, Any]:
        raise LookupError("not in the engine")

    assert _warnings("ml.c7g.large", image_info=missing) == []


def test_accelerators_are_said_to_be_absent() -> None:
    said = _warnings("ml.inf2.xlarge")  # 4 vCPU on this 2-CPU host too
    assert any("Inferentia" in w and "runs on CPU only" in w for w in said)


@pytest.mark.parametrize(
    ("instance_type", "host_gpus", "expected"),
    [("ml.g5.12xlarge", True, 4), ("ml.g5.12xlarge", False, 0), ("ml.m5.large", True, 0)],
)
def test_a_gpu_type_asks_for_its_gpus_where_the_host_has_them(
    instance_type: str, host_gpus: bool, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smlocal.emulator import endpoint as endpoint_module
    from smlocal.emulator.endpoint import Endpoint
    from tests.unit.fakes import FakeBackend, FakeImage

    monkeypatch.setattr(endpoint_module, "host_has_gpus", lambda: host_gpus)
    spec = build_spec(name="g", variants=[{"image": "echo:1", "instance_type": instance_type}])
    endpoint = Endpoint(spec, FakeBackend({"echo:1": FakeImage()}), {})
    assert endpoint._container_run(spec.variants[0], 0).gpus == expected
