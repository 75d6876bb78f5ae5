"""promote's flags → PromoteRequest: flag > profile > default; for autoscaling, the bounds
flag > profile > load-test advice > default and the target flag > advice > profile > default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smlocal.emulator.errors import ConfigError
from smlocal.promote.options import PromoteOptions, build_request

PROFILES = """
[promote]
region = "eu-west-1"

[profiles.prod.promote]
min_instances = 2
max_instances = 8
instance_type = "ml.c5.xlarge"
target_invocations = 500
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "smlocal.toml").write_text(PROFILES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    return tmp_path


def _options(**given: object) -> PromoteOptions:
    base: dict[str, object] = {
        "image": "smlocal/sklearn-iris:latest",
        "model": "model.tar.gz",
        "endpoint_name": "iris-prod",
    }
    return PromoteOptions(**{**base, **given})  # type: ignore[arg-type]


def _advice(tmp_path: Path, **fields: float | None) -> Path:
    path = tmp_path / "loadtest-summary.json"
    path.write_text(json.dumps({"target_invocations_per_instance": 900.0, **fields}))
    return path


def test_defaults_without_profile(project: Path) -> None:
    request = build_request(_options())
    assert request.region == "eu-west-1"
    assert request.spec.variants[0].instance_type == "ml.m5.large"
    assert (request.scaling.min_instances, request.scaling.max_instances) == (1, 4)
    assert request.scaling.target_invocations == 70.0
    assert request.wait_timeout_s == 1800.0


def test_profile_over_defaults(project: Path) -> None:
    request = build_request(_options(profile="prod"))
    assert request.spec.variants[0].instance_type == "ml.c5.xlarge"
    assert (request.scaling.min_instances, request.scaling.max_instances) == (2, 8)
    assert request.scaling.target_invocations == 500


def test_profile_bounds_win_over_advice_and_advice_target_over_profile(project: Path) -> None:
    advice = _advice(project, min_instances=3, max_instances=1, peak_rps=None, base_rps=5.0)
    request = build_request(_options(profile="prod", scaling_from=advice))
    scaling = request.scaling
    assert scaling.target_invocations == 900.0  # measured: the load test's
    assert (scaling.min_instances, scaling.max_instances) == (2, 8)  # policy: the profile's
    assert scaling.sources == {
        "min_instances": "profile prod",
        "max_instances": "profile prod",
        "target_invocations": f"load test {advice}",
    }
    assert "max 8 (profile prod)" in scaling.describe()
    flagged = build_request(
        _options(profile="prod", scaling_from=advice, min_instances=1, target_invocations=42)
    )
    assert flagged.scaling.min_instances == 1
    assert flagged.scaling.target_invocations == 42
    assert flagged.scaling.sources["min_instances"] == "--min"


def test_advice_without_peak_rate_never_caps_max_at_one(project: Path) -> None:
    # What `loadtest --find-max` writes without --peak-rps: max_instances 1, peak_rps null.
    advice = _advice(project, min_instances=1, max_instances=1, peak_rps=None, base_rps=None)
    request = build_request(_options(scaling_from=advice))
    assert request.scaling.max_instances == 4  # the default, not the placeholder
    assert request.scaling.sources["max_instances"] == "default"
    with_peak = _advice(project, min_instances=1, max_instances=6, peak_rps=300.0, base_rps=None)
    assert build_request(_options(scaling_from=with_peak)).scaling.max_instances == 6


def test_region_from_environment_when_no_profile_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert build_request(_options()).region == "ap-south-1"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError, match="no AWS region"):
        build_request(_options())


def test_single_variant_flags_refused_beside_endpoint(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"IMAGE, --instance-type: not with --endpoint"):
        build_request(_options(endpoint="iris", instance_type="ml.m5.large"))


def test_missing_image_model_or_name_is_usage_error(project: Path) -> None:
    with pytest.raises(ConfigError, match="pass IMAGE, --model and --endpoint-name"):
        build_request(PromoteOptions(image="x:1"))
