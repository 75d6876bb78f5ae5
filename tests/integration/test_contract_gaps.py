"""Fixtures for the checks that had none: bind-to-port, OOM, platform (and not-applicable cases).

Same shape as ``test_contract_fixtures.py``: the whole suite runs against a fixture that
breaks one rule and must fail that check, with its evidence, and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from smlocal.contracts.checks.startup import check_bind_to_port
from smlocal.contracts.model import Severity, Status
from smlocal.emulator.backend import ContainerRun
from smlocal.emulator.docker_backend import DockerBackend
from tests.conftest import fixture_image
from tests.integration.test_contract_fixtures import ECHO_SPEC, _failed, _run

# ml.t2.medium: 4 GiB, the smallest memory of any instance type, so the OOM fixture's 6 GiB
# worker is killed long before it could trouble the host.
SMALL_INSTANCE = "ml.t2.medium"


@pytest.fixture()
def echo_spec(tmp_path: Path) -> Path:
    path = tmp_path / "echo.yaml"
    path.write_text(ECHO_SPEC)
    return path


def test_image_ignoring_bind_to_port_fails_it(
    docker_images: None, echo_spec: Path, tmp_path: Path
) -> None:
    report = _run(fixture_image("ignores-bind-to-port"), echo_spec, tmp_path / "home")
    failed = _failed(report)
    assert set(failed) == {"startup.bind-to-port"}, failed
    assert "/ping answers on 8080, not on 9080" in failed["startup.bind-to-port"]
    assert "port 9080: no answer; port 8080: 200" in failed["startup.bind-to-port"]
    assert not report.passed


def test_echo_fixture_honours_bind_to_port(
    docker_images: None, echo_spec: Path, tmp_path: Path
) -> None:
    only = frozenset({"image.serve-argument", "startup.healthy", "startup.bind-to-port"})
    report = _run(fixture_image("echo"), echo_spec, tmp_path / "home", only=only)
    result = report.result("startup.bind-to-port")
    assert result is not None and result.status == Status.PASSED, _failed(report)
    assert result.outcome.measurements["port"] == 9080


def test_bind_to_port_without_the_label_is_not_applicable() -> None:
    run = ContainerRun("unused", "unused", None, {}, 1.0, 2**30, {})
    outcome = check_bind_to_port({}, DockerBackend(client=object()), run, timeout_s=1)
    assert outcome.status == Status.NOT_APPLICABLE
    assert "no LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in (
        outcome.summary
    )


def test_worker_over_the_memory_limit_fails_oom(
    docker_images: None, echo_spec: Path, tmp_path: Path
) -> None:
    report = _run(fixture_image("oom"), echo_spec, tmp_path / "home", instance_type=SMALL_INSTANCE)
    failed = _failed(report)
    assert set(failed) == {"lifecycle.oom"}, failed
    assert "OOM-killed (limit 4 GiB, ml.t2.medium)" in failed["lifecycle.oom"]
    assert "oom_kill 1" in failed["lifecycle.oom"]
    assert report.instance_type == SMALL_INSTANCE


# The platform fixture is the echo image with arm64 metadata (scripts/relabel-image-platform.py):
# it still runs here, so the full suite proves nothing but the platform is judged.
GRAVITON = "ml.c7g.large"


def test_arm64_image_is_a_warning_for_an_x86_instance_type(
    docker_images: None, echo_spec: Path, tmp_path: Path
) -> None:
    report = _run(fixture_image("platform-arm64"), echo_spec, tmp_path / "home")
    failed = _failed(report)
    assert set(failed) == {"image.platform"}, failed
    assert "image platform is linux/arm64; ml.m5.large runs linux/amd64" in failed["image.platform"]
    result = report.result("image.platform")
    assert result is not None and result.severity == Severity.WARNING
    assert report.passed  # a warning does not fail the suite


def test_platform_is_judged_against_the_instance_types_architecture(
    docker_images: None, echo_spec: Path, tmp_path: Path
) -> None:
    only = frozenset({"image.platform"})
    arm_on_graviton = _run(
        fixture_image("platform-arm64"),
        echo_spec,
        tmp_path / "arm",
        only=only,
        instance_type=GRAVITON,
    )
    verdict = arm_on_graviton.result("image.platform")
    assert verdict is not None and verdict.status == Status.PASSED, verdict
    amd_on_graviton = _run(
        fixture_image("echo"), echo_spec, tmp_path / "amd", only=only, instance_type=GRAVITON
    )
    failed = _failed(amd_on_graviton)
    assert "linux/amd64 cannot run on ml.c7g.large" in failed["image.platform"]
    assert not amd_on_graviton.passed
