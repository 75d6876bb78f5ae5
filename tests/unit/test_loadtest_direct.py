"""``smlocal loadtest --direct``: which containers it calls, what it refuses, and a short real
Locust run against fake containers (no Docker)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smlocal.cli import app
from smlocal.emulator.errors import ConfigError, ExitCode, SmlocalError
from smlocal.emulator.spec import build_spec
from smlocal.loadtests.errors import classify
from smlocal.loadtests.fleet import direct_urls, fleet_from_status, read_fleet
from smlocal.loadtests.payloads import Payload
from smlocal.loadtests.target import Endpoint, direct_target
from tests.harness import Serving, serving
from tests.unit.fakes import FakeBackend, FakeImage


def _variant(name: str, *urls: str, weight: float = 1.0, **flags: bool) -> dict[str, Any]:
    return {
        "VariantName": name,
        "CurrentWeight": weight,
        "Serverless": flags.get("serverless", False),
        "MultiModel": flags.get("multi_model", False),
        "Instances": [
            {"Instance": f"{name}/{i}", "ContainerId": f"{name}-{i}", "Url": url, "Healthy": True}
            for i, url in enumerate(urls)
        ],
    }


def _status(*variants: dict[str, Any], asynchronous: bool = False) -> dict[str, Any]:
    return {
        "Endpoints": [
            {"EndpointName": "other", "ProductionVariants": []},
            {"EndpointName": "Ep", "AsyncInference": asynchronous, "ProductionVariants": variants},
        ]
    }


def test_direct_spreads_over_the_variants_healthy_instances() -> None:
    status = _status(_variant("AllTraffic", "http://10.0.0.2:8080", "http://10.0.0.3:8080/"))
    status["Endpoints"][1]["ProductionVariants"][0]["Instances"].append(
        {"Instance": "AllTraffic/2", "ContainerId": "x", "Url": "http://10.0.0.4:8080",
         "Healthy": False}
    )  # fmt: skip
    fleet = fleet_from_status(status, "ep")  # names match as SageMaker's do: case-insensitive
    assert fleet is not None
    assert fleet.container_ids == ("AllTraffic-0", "AllTraffic-1")  # not the unhealthy one
    assert list(direct_urls(fleet)) == [
        "http://10.0.0.2:8080/invocations",
        "http://10.0.0.3:8080/invocations",
    ]
    assert fleet_from_status(status, "absent") is None


def test_several_variants_need_a_target_variant() -> None:
    fleet = fleet_from_status(
        _status(_variant("A", "http://a:1"), _variant("B", "http://b:1")), "ep"
    )
    assert fleet is not None
    with pytest.raises(ConfigError, match="give --target-variant"):
        direct_urls(fleet)
    assert list(direct_urls(fleet, "B")) == ["http://b:1/invocations"]
    with pytest.raises(ConfigError, match="has no variant C"):
        direct_urls(fleet, "C")
    # A variant weighted 0 takes no traffic: the other one is the only choice.
    zero = fleet_from_status(_status(_variant("A", "http://a:1"), _variant("B", weight=0)), "ep")
    assert zero is not None and list(direct_urls(zero)) == ["http://a:1/invocations"]


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (_status(_variant("A", "http://a:1"), asynchronous=True), "it is asynchronous"),
        (_status(_variant("A", "http://a:1", serverless=True)), "it is serverless"),
        (_status(_variant("A", "http://a:1", multi_model=True)), "it is multi-model"),
    ],
)
def test_direct_is_refused_where_the_front_end_does_the_work(
    status: dict[str, Any], reason: str
) -> None:
    fleet = fleet_from_status(status, "ep")
    assert fleet is not None
    with pytest.raises(ConfigError, match=reason) as caught:
        direct_urls(fleet)
    assert caught.value.exit_code == ExitCode.USAGE
    assert "without --direct" in str(caught.value)


def test_direct_needs_a_local_smlocal_endpoint_with_an_instance() -> None:
    aws = Endpoint(name="e", url="https://runtime.sagemaker", kind="aws")
    with pytest.raises(ConfigError, match="needs a local endpoint"):
        direct_target(aws, None, None)
    with pytest.raises(ConfigError, match=r"does not list endpoint e's containers"):
        direct_target(Endpoint(name="e", url="http://127.0.0.1:9", kind="local"), None, None)
    empty = fleet_from_status(_status(_variant("A")), "ep")
    assert empty is not None
    with pytest.raises(SmlocalError, match="no healthy instance"):
        direct_urls(empty)


def test_the_container_gets_the_runtime_apis_headers_and_any_error_is_a_model_error() -> None:
    payload = Payload(b"{}", "application/json", custom_attributes="a=1")
    assert payload.container_headers() == {
        "Content-Type": "application/json",
        "X-Amzn-SageMaker-Custom-Attributes": "a=1",
        "Accept": "*/*",  # as the runtime API adds when the caller names none
    }
    assert Payload(b"", "text/csv", accept="text/csv").container_headers()["Accept"] == "text/csv"
    assert classify(429, {}, b"", direct=True) == "ModelError(429)"
    assert classify(429, {}, b"") == "Throttling"
    assert classify(200, {}, b"", direct=True) is None


def test_aws_targets_refuse_direct_before_anything_runs(tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    result = CliRunner().invoke(app, ["loadtest", "aws:e", "--payload", str(payload), "--direct"])
    assert result.exit_code == ExitCode.USAGE
    assert "--direct needs a local endpoint" in result.output


@pytest.fixture()
def fake_backend() -> FakeBackend:
    return FakeBackend({"echo": FakeImage()})


@pytest.fixture()
def two_instances(fake_backend: FakeBackend, tmp_path: Path) -> Iterator[Serving]:
    spec = build_spec(name="lt-fake", variants=[{"image": "echo", "instance_count": 2}])
    with serving(spec, fake_backend, tmp_path / "state") as handle:
        assert handle.status == "InService"
        yield handle


def test_the_status_route_names_each_instances_container_and_address(
    two_instances: Serving, fake_backend: FakeBackend
) -> None:
    fleet = read_fleet(two_instances.url, "lt-fake")
    assert fleet is not None and not fleet.asynchronous
    (variant,) = fleet.variants
    assert not variant.serverless and not variant.multi_model
    assert sorted(fleet.container_ids) == sorted(fake_backend.containers)
    assert all(i.url.startswith("http://127.0.0.1:") for i in variant.instances)
    assert read_fleet(two_instances.url, "absent") is None


def _loadtest(url: str, report: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    payload = report.parent / "p.json"
    payload.write_text('{"x": 1}')
    result = CliRunner().invoke(
        app,
        ["loadtest", "lt-fake", "--endpoint-url", url, "--payload", str(payload),
         "--users", "2", "--duration", "2", "--report", str(report), *extra],
    )  # fmt: skip
    summary_path = report / "loadtest-summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return result.exit_code, result.output, summary


def test_direct_run_calls_every_container_itself(
    two_instances: Serving, fake_backend: FakeBackend, tmp_path: Path
) -> None:
    code, output, summary = _loadtest(two_instances.url, tmp_path / "report", "--direct")
    assert code == 0, output
    assert "direct to the container" in output
    assert summary["direct"]["urls"] == direct_urls(read_fleet(two_instances.url, "lt-fake"))  # type: ignore[arg-type]
    assert summary["totals"]["requests"] > 20 and summary["totals"]["failures"] == 0
    for container in fake_backend.containers.values():
        calls = [(path, headers) for path, headers, _ in container.requests]
        assert len(calls) > 10  # round-robin reaches both instances
        assert {path for path, _ in calls} == {"/invocations"}
        assert all(h["accept"] == "*/*" for _, h in calls)  # as the runtime API forwards


def test_through_the_runtime_api_the_report_has_its_cpu(
    two_instances: Serving, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake endpoint is served by this process: make it the "service" the URL belongs to.
    monkeypatch.setattr(
        "smlocal.loadtests.target._service_record", lambda: (os.getpid(), two_instances.url)
    )
    code, output, summary = _loadtest(two_instances.url, tmp_path / "report")
    assert code == 0, output
    assert f"through the runtime API at {two_instances.url}" in output
    assert "runtime API (smlocal) used" in output and "µs per request" in output
    assert summary["direct"] is None
    assert summary["cpu"]["runtime_api_cpu_s"] > 0
    assert summary["cpu"]["runtime_api_us_per_request"] > 0
    assert summary["cpu"]["requests"] == summary["totals"]["requests"]
