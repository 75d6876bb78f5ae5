"""Everything promote refuses before any AWS call: SageMaker's limits and bad flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smlocal.emulator.errors import ConfigError
from smlocal.emulator.spec import build_spec
from smlocal.promote.request import (
    PromoteRequest,
    ScalingSettings,
    ServerlessSettings,
    async_settings,
    check_endpoint_name,
    parse_serverless,
    scaling_from_loadtest,
    validate_request,
)


def _request(variants: int = 1, **changes: Any) -> PromoteRequest:
    spec = build_spec(
        name="iris",
        variants=[{"name": f"v{i}", "image": "img:1"} for i in range(variants)],
    )
    values: dict[str, Any] = {
        "spec": spec,
        "model": "model.tar.gz",
        "region": "us-east-1",
        "deployment_id": "iris-1",
        "manifest_path": Path("m.json"),
    }
    return PromoteRequest(**{**values, **changes})


@pytest.mark.parametrize("memory", [1024, 2048, 3072, 4096, 5120, 6144])
def test_serverless_memory_in_steps_of_1024_is_accepted(memory: int) -> None:
    assert parse_serverless(f"{memory}:200") == ServerlessSettings(memory, 200)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1500:10", "serverless memory 1500 MB is not allowed"),
        ("512:10", "not allowed"),
        ("7168:10", "not allowed"),
        ("2048:0", "MaxConcurrency 0 is outside 1-200"),
        ("2048:201", "MaxConcurrency 201 is outside 1-200"),
        ("lots", "expects MEMORY:MAXCONC"),
    ],
)
def test_serverless_values_sagemaker_rejects_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_serverless(text)


def test_eleven_variants_are_refused() -> None:
    with pytest.raises(ConfigError, match="variants"):
        _request(variants=11)


def test_serverless_allows_at_most_five_variants() -> None:
    validate_request(_request(variants=5, serverless=ServerlessSettings(2048, 5)))
    with pytest.raises(ConfigError, match="at most 5 variants; got 6"):
        validate_request(_request(variants=6, serverless=ServerlessSettings(2048, 5)))


@pytest.mark.parametrize("name", ["bad_name", "-leading", "trailing-", "x" * 64, "", "a.b"])
def test_endpoint_names_sagemaker_rejects_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="SageMaker allows 1-63 letters"):
        check_endpoint_name(name)


@pytest.mark.parametrize("name", ["a", "iris-prod", "A1--b2", "x" * 63])
def test_valid_endpoint_names_pass(name: str) -> None:
    assert check_endpoint_name(name) == name


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        (ScalingSettings(min_instances=0), "at least 1"),
        (ScalingSettings(min_instances=3, max_instances=2), "below --min"),
        (ScalingSettings(target_invocations=0), "above 0"),
    ],
)
def test_bad_scaling_bounds_are_refused(scaling: ScalingSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_request(_request(scaling=scaling))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"registry_url": "http://x"}, "HOST:PORT"),
        ({"role_arn": "my-role"}, "IAM role ARN"),
        ({"async_output": async_settings("bucket/out")}, "s3://bucket/prefix"),
    ],
)
def test_malformed_options_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_request(_request(**changes))


def test_async_output_gets_output_and_failure_paths() -> None:
    settings = async_settings("s3://bucket/async/")
    assert (settings.output_path, settings.failure_path) == (
        "s3://bucket/async/output",
        "s3://bucket/async/failure",
    )


def test_loadtest_advice_is_read(tmp_path: Path) -> None:
    path = tmp_path / "loadtest.json"
    path.write_text(json.dumps({"target_invocations_per_instance": 180.5, "max_instances": 9}))
    assert scaling_from_loadtest(path) == {"target_invocations": 180.5, "max_instances": 9}


def test_loadtest_file_without_the_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loadtest.json"
    path.write_text("{}")
    with pytest.raises(ConfigError, match="target_invocations_per_instance"):
        scaling_from_loadtest(path)


def test_a_variant_without_a_model_needs_the_request_model() -> None:
    with pytest.raises(ConfigError, match="variant\\(s\\) v0, v1 have no model"):
        validate_request(_request(variants=2, model=""))
    validate_request(_request(variants=2))  # --model is every variant's fallback


def test_each_variant_gets_its_own_names_for_image_model_and_upload() -> None:
    from smlocal.promote.context import Deployment, repository_for
    from smlocal.promote.manifest import Manifest

    spec = build_spec(
        name="iris",
        variants=[
            {"name": "A", "image": "reg.example:5000/team/iris:1", "model": "a.tar.gz"},
            {"name": "B", "image": "team/iris-b:2", "model": "b"},
            {"name": "C", "image": "team/iris-b:2", "model": "a.tar.gz"},
        ],
    )
    request = _request(spec=spec)
    dep = Deployment(
        request=request,
        clients=None,  # type: ignore[arg-type]
        manifest=Manifest(Path("m.json"), "iris-1", "iris", "us-east-1"),
        reporter=None,  # type: ignore[arg-type]
        image="reg.example:5000/team/iris:1",
        image_id="sha256:1",
    )
    assert repository_for("reg.example:5000/team/iris:1") == "team/iris"
    assert dep.models == ["a.tar.gz", "b"]
    assert dep.model_key_for("b") == "smlocal/iris/iris-1/model-2.tar.gz"
    names = [dep.sagemaker_model_name(v) for v in spec.variants]
    assert len(set(names)) == 3 and all(n.startswith("iris-") for n in names)
