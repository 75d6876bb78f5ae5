"""EndpointSpec limits, InvokeEndpoint input rules and the AWS error table, against botocore."""

from __future__ import annotations

import re

import botocore.session
import pytest
from botocore.parsers import create_parser
from hypothesis import given
from hypothesis import strategies as st

from smlocal.emulator.aws_errors import AwsError, error_status, model_error, validation_error
from smlocal.emulator.errors import ConfigError
from smlocal.emulator.instance_types import lookup_instance_type
from smlocal.emulator.request_rules import invoke_rules
from smlocal.emulator.spec import build_spec

NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
SERVICE = botocore.session.get_session().get_service_model("sagemaker-runtime")


def parse(error: AwsError) -> dict[str, object]:
    """What botocore's client makes of our error response: generic parse, then the error shape."""
    parser = create_parser("rest-json")
    response = {"status_code": error.status, "headers": error.headers("rid"), "body": error.body()}
    output = SERVICE.operation_model("InvokeEndpoint").output_shape
    parsed: dict[str, object] = parser.parse(response, output)
    code = parsed["Error"]["Code"]  # type: ignore[index]
    error_shape = SERVICE.shape_for_error_code(code)
    if error_shape is not None:
        parsed.update(parser.parse(response, error_shape))
    return parsed


@given(st.text(max_size=80))
def test_endpoint_name_rule_matches_sagemakers_regex(name: str) -> None:
    valid = bool(NAME.fullmatch(name)) and len(name) <= 63
    try:
        invoke_rules().check_endpoint_name(name)
        accepted = True
    except AwsError as error:
        assert error.code == "ValidationError"
        accepted = False
    assert accepted == valid


@given(st.text(max_size=1100))
def test_custom_attributes_accept_only_ascii_up_to_1024(value: str) -> None:
    ok = len(value) <= 1024 and all(ord(c) < 128 for c in value)
    try:
        forwarded = invoke_rules().forwarded_headers({"x-amzn-sagemaker-custom-attributes": value})
        assert ok
        assert forwarded == {"x-amzn-sagemaker-custom-attributes": value}
    except AwsError as error:
        assert not ok
        assert "***" in error.message


def test_body_limit_comes_from_the_model() -> None:
    assert invoke_rules().max_body_bytes == 6 * 1024 * 1024


def test_statuses_come_from_botocore() -> None:
    assert error_status("ValidationError") == 400
    assert error_status("ModelError") == 424
    assert error_status("ModelNotReadyException") == 429
    assert error_status("InternalDependencyException") == 530


def test_botocore_reads_our_model_error_members() -> None:
    parsed = parse(
        model_error(
            "Received client error (415)",
            original_status=415,
            original_message="nope",
            log_stream_arn="arn:aws:logs:x",
        )
    )
    assert parsed["Error"] == {"Code": "ModelError", "Message": "Received client error (415)"}
    assert parsed["OriginalStatusCode"] == 415
    assert parsed["OriginalMessage"] == "nope"
    assert parsed["LogStreamArn"] == "arn:aws:logs:x"


def test_botocore_reads_our_validation_error() -> None:
    parsed = parse(validation_error("bad"))
    assert parsed["Error"] == {"Code": "ValidationError", "Message": "bad"}


def test_spec_defaults() -> None:
    spec = build_spec(name="ep", variants=[{"image": "img"}])
    variant = spec.variants[0]
    assert (variant.name, variant.instance_type, variant.instance_count) == (
        "AllTraffic",
        "ml.m5.large",
        1,
    )
    assert spec.startup_timeout_s == 480
    assert variant.instance.vcpus == 2


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"name": "bad_name", "variants": [{"image": "i"}]}, "name"),
        ({"name": "x" * 64, "variants": [{"image": "i"}]}, "name"),
        ({"name": "ep", "variants": []}, "variants"),
        ({"name": "ep", "variants": [{"image": "i"}] * 11}, "variants"),
        ({"name": "ep", "variants": [{"image": "i", "instance_type": "ml.x"}]}, "unknown instance"),
        ({"name": "ep", "variants": [{"image": "i", "env": {"1A": "v"}}]}, "valid variable name"),
        ({"name": "ep", "variants": [{"image": "i", "env": {"A": "v" * 1025}}]}, "1024-byte"),
        (
            {
                "name": "ep",
                "variants": [{"image": "i", "env": {f"K{n}": "v" * 1000 for n in range(40)}}],
            },
            "32768",
        ),
        (
            {"name": "ep", "variants": [{"image": "i"}], "startup_timeout_s": 30},
            "startup_timeout_s",
        ),
        ({"name": "ep", "variants": [{"image": "i"}, {"image": "j"}]}, "unique"),
    ],
)
def test_spec_refuses_what_sagemaker_refuses(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_spec(**fields)
    assert needle in str(caught.value)


def test_unknown_instance_type_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        lookup_instance_type("ml.m5.huge")
    assert "ml.m5.large" in str(caught.value)
