"""Each broken fixture image fails exactly the contract check it breaks, with evidence.

Every fixture shares the echo fixture's base and server and breaks one hosting rule; the suite
runs in full against it (real Docker, real HTTP) and must fail that check — and no unrelated
one. The well-behaved echo fixture passes the same spec with no failure at all.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from smlocal.contracts.model import Severity, Status, SuiteReport
from smlocal.contracts.runner import SuiteOptions, run_suite
from smlocal.emulator.state import StateDir
from tests.conftest import SKLEARN_MODEL, fixture_image

# Declares JSON and CSV, with an example for JSON only: CSV is judged with probe bodies.
ECHO_SPEC = """\
content_types: [application/json, text/csv]
examples:
  - name: echo-json
    content_type: application/json
    json: {"x": 1}
    expect: {status: 200, json: {"x": 1}}
"""
# Tests of images that ignore SIGTERM shorten SageMaker's 30 s grace; the verdict is the same.
SHORT_GRACE_S = 4.0


@dataclass(frozen=True)
class Broken:
    fixture: str
    failing: tuple[str, ...]
    evidence: str
    severity: Severity = Severity.ERROR
    skip: frozenset[str] = frozenset()
    """Checks left out only to save time (they send ~70 requests to a deliberately slow image)."""


SLOW_IMAGE_SKIPS = frozenset({"invocations.malformed", "invocations.large-body"})
BROKEN = [
    Broken("no-serve", ("image.serve-argument",), "no executable `serve`"),
    Broken(
        # Both checks enforce the one rule "signals reach the server": static and observed.
        "shell-entrypoint",
        ("image.exec-entrypoint", "lifecycle.sigterm"),
        "/bin/sh runs as PID 1",
    ),
    Broken(
        "env-credentials",
        ("image.env-credentials",),
        "AWS_SECRET_ACCESS_KEY=<",
        severity=Severity.WARNING,
    ),
    Broken("exit-at-start", ("startup.healthy",), "exited with code 3"),
    Broken("writes-model", ("startup.read-only-model",), "Read-only file system"),
    Broken("slow-ping-later", ("ping.latency",), "no answer within 2 s"),
    # Measured on the container's own socket: Docker's port proxy would accept for it.
    Broken("slow-accept", ("ping.accept-latency",), "the SYN was dropped and retried"),
    Broken(
        "single-threaded", ("ping.while-busy",), "pings failed the 2 s rule", skip=SLOW_IMAGE_SKIPS
    ),
    Broken("wrong-answer", ("invocations.examples",), 'got {"error": "wrong answer"}'),
    Broken("rejects-csv", ("invocations.content-types",), "text/csv (probe body): 415"),
    Broken("500-on-unknown-type", ("invocations.unsupported-content-type",), "500 in"),
    Broken("500-without-accept", ("invocations.accept",), "Accept missing (echo-json): 500"),
    Broken("rejects-unknown-headers", ("invocations.unknown-headers",), "400 in"),
    Broken("500-on-malformed", ("invocations.malformed",), "JSONDecodeError"),
    Broken("500-on-large-body", ("invocations.large-body",), "6291456 bytes: 500"),
    Broken(
        "huge-csv-response",
        ("invocations.response-limits",),
        "text/csv body of 16 bytes: answer of 7340032 bytes (limit 6291456)",
    ),
    Broken("limits-concurrency", ("invocations.concurrency",), "503 in", skip=SLOW_IMAGE_SKIPS),
    Broken("ignores-sigterm", ("lifecycle.sigterm",), "exit code 137"),
]


@pytest.fixture()
def echo_spec(tmp_path: Path) -> Path:
    path = tmp_path / "echo.yaml"
    path.write_text(ECHO_SPEC)
    return path


def _run(
    image: str, spec: Path, home: Path, *, skip: frozenset[str] = frozenset(), **kw: object
) -> SuiteReport:
    options = SuiteOptions(
        image=image,
        spec_path=spec,
        state=StateDir(home),
        stop_grace_s=SHORT_GRACE_S,
        skip=skip,
        **kw,  # type: ignore[arg-type]
    )
    return run_suite(options)


def _failed(report: SuiteReport) -> dict[str, str]:
    return {
        r.check.id: "\n".join((r.outcome.summary, *r.outcome.evidence))
        for r in report.results
        if r.status == Status.FAILED
    }


def test_echo_fixture_passes_everything(
    docker_images: None, echo_spec: Path, tmp_path: Path
) -> None:
    report = _run(fixture_image("echo"), echo_spec, tmp_path / "home")
    assert _failed(report) == {}
    assert report.passed
    by_id = {r.check.id: r for r in report.results}
    assert by_id["invocations.examples"].status == Status.PASSED
    assert by_id["startup.read-only-model"].status == Status.NOT_APPLICABLE  # no --model
    assert "does not require" in by_id["isolation.network"].outcome.summary


def test_aws_style_container_passes_without_a_spec(docker_images: None, tmp_path: Path) -> None:
    # No ENTRYPOINT, `serve` on PATH, CSV only, no spec: what AWS's examples do must pass.
    report = run_suite(
        SuiteOptions(image=fixture_image("aws-style"), state=StateDir(tmp_path / "home"))
    )
    assert _failed(report) == {}
    serve = report.result("image.serve-argument")
    assert serve is not None and "/opt/program/serve" in serve.outcome.summary
    types = report.result("invocations.content-types")
    assert types is not None and types.outcome.measurements["learned"] == {"text/csv": 200}
    examples = report.result("invocations.examples")
    assert examples is not None and examples.status == Status.NOT_APPLICABLE


@pytest.mark.parametrize("broken", BROKEN, ids=[b.fixture for b in BROKEN])
def test_broken_fixture_fails_only_its_check(
    docker_images: None, echo_spec: Path, tmp_path: Path, broken: Broken
) -> None:
    model = str(SKLEARN_MODEL) if broken.fixture == "writes-model" else None
    report = _run(
        fixture_image(broken.fixture),
        echo_spec,
        tmp_path / "home",
        skip=broken.skip,
        model=model,
    )
    failed = _failed(report)
    assert set(failed) == set(broken.failing), failed
    assert broken.evidence in failed[broken.failing[0]]
    for check_id in broken.failing:
        result = report.result(check_id)
        assert result is not None and result.severity == broken.severity
    assert report.passed is (broken.severity != Severity.ERROR)


def test_non_root_user_is_reported_not_failed(
    docker_images: None, echo_spec: Path, tmp_path: Path
) -> None:
    report = _run(fixture_image("non-root"), echo_spec, tmp_path / "home", skip=SLOW_IMAGE_SKIPS)
    assert _failed(report) == {}
    user = report.result("image.user")
    assert user is not None and user.severity == Severity.INFO
    assert "runs as 'nobody'" in user.outcome.summary


@pytest.fixture()
def fake_model_hub() -> Iterator[str]:
    """A listening socket on the host, where smlocal's serving network reaches it (its
    gateway), standing in for a model hub on the internet: ``ip:port``. Model containers
    reach the host and the internet, not other containers, so the hub is not a container."""
    from smlocal.emulator.docker_backend import SERVING_NETWORK, DockerBackend

    DockerBackend().ensure_serving_network()
    network = docker.from_env().networks.get(SERVING_NETWORK)
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    with socket.socket() as hub:
        hub.bind((gateway, 0))
        hub.listen(16)  # the kernel completes the probe's connect: nothing to accept
        yield f"{gateway}:{hub.getsockname()[1]}"


def test_network_isolation_catches_a_download_at_startup(
    docker_images: None, tmp_path: Path, fake_model_hub: str
) -> None:
    spec = tmp_path / "isolated.yaml"
    spec.write_text(
        f'network_isolation: true\nenv: {{FIXTURE_NETWORK_PROBE: "{fake_model_hub}"}}\n'
    )
    report = _run(fixture_image("needs-network"), spec, tmp_path / "home", skip=SLOW_IMAGE_SKIPS)
    failed = _failed(report)
    assert set(failed) == {"isolation.network"}, failed
    assert f"cannot reach {fake_model_hub}" in failed["isolation.network"]
    healthy = report.result("startup.healthy")
    assert healthy is not None and healthy.status == Status.SKIPPED
    # The same spec on an image that needs no network passes isolated.
    only = frozenset({"image.serve-argument", "startup.healthy", "isolation.network"})
    clean = _run(fixture_image("echo"), spec, tmp_path / "home", only=only)
    result = clean.result("isolation.network")
    assert result is not None and result.status == Status.PASSED, _failed(clean)
