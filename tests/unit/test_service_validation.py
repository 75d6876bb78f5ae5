"""Control-plane input validation from botocore's SageMaker model, in AWS's words (§A.3)."""

from __future__ import annotations

import time
from typing import Any

import botocore.session
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.service import validation
from smlocal.emulator.service.validation import validate_input, violations

MODEL = botocore.session.get_session().get_service_model("sagemaker")
HOSTING_OPERATIONS = [
    "CreateModel", "DescribeModel", "DeleteModel", "ListModels",
    "CreateEndpointConfig", "DescribeEndpointConfig", "DeleteEndpointConfig",
    "ListEndpointConfigs", "CreateEndpoint", "DescribeEndpoint", "UpdateEndpoint",
    "UpdateEndpointWeightsAndCapacities", "DeleteEndpoint", "ListEndpoints",
    "AddTags", "ListTags", "DeleteTags",
    "CreateTransformJob", "DescribeTransformJob", "StopTransformJob", "ListTransformJobs",
]  # fmt: skip
ARN = "arn:aws:sagemaker:us-east-1:000000000000:endpoint/ep"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"


def pattern_of(shape: str) -> str:
    return str(MODEL.shape_for(shape).metadata["pattern"])


def refusal(operation: str, params: dict[str, Any]) -> AwsError:
    with pytest.raises(AwsError) as caught:
        validate_input(operation, params)
    return caught.value


def variant(**overrides: Any) -> dict[str, Any]:
    return {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1} | overrides


def config(*variants: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"EndpointConfigName": "cfg", "ProductionVariants": list(variants), **extra}


def test_a3_model_name_message_exactly() -> None:
    error = refusal("CreateEndpointConfig", config(variant(ModelName="ENTER MODEL NAME")))
    assert error.code == "ValidationException"
    assert error.status == 400
    # §A.3's 2021 sample printed that year's pattern; AWS prints its model's, so do we.
    assert error.message == (
        "1 validation error detected: Value 'ENTER MODEL NAME' at "
        "'productionVariants.1.member.modelName' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {pattern_of('ModelName')}"
    )


def test_a3_too_long_and_bad_pattern_are_two_errors() -> None:
    name = "Bad_Name" * 8  # 64 characters, and "_" is outside the pattern
    error = refusal("CreateEndpoint", {"EndpointName": name, "EndpointConfigName": "cfg"})
    where = f"Value '{name}' at 'endpointName' failed to satisfy constraint: Member must"
    assert error.message == (
        f"2 validation errors detected: {where} have length less than or equal to 63; "
        f"{where} satisfy regular expression pattern: {pattern_of('EndpointName')}"
    )


def test_missing_required_member_is_null() -> None:
    error = refusal("CreateEndpoint", {"EndpointName": "ep"})
    assert error.message == (
        "1 validation error detected: Value null at 'endpointConfigName' failed to satisfy "
        "constraint: Member must not be null"
    )
    # Explicit JSON null is absence; both required members missing come in model order.
    assert violations("CreateEndpoint", {"EndpointName": None}) == [
        "Value null at 'endpointName' failed to satisfy constraint: Member must not be null",
        "Value null at 'endpointConfigName' failed to satisfy constraint: Member must not be null",
    ]


def test_nested_path_has_one_based_index() -> None:
    found = violations("CreateEndpointConfig", config(variant(), variant(VariantName="-bad")))
    assert found == [
        "Value '-bad' at 'productionVariants.2.member.variantName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {pattern_of('VariantName')}"
    ]
    missing = violations("CreateEndpointConfig", config(variant(), {"ModelName": "m"}))
    assert missing == [
        "Value null at 'productionVariants.2.member.variantName' failed to satisfy constraint: "
        "Member must not be null"
    ]


def test_numeric_ranges() -> None:
    assert violations("CreateEndpointConfig", config(variant(InitialInstanceCount=0))) == [
        "Value '0' at 'productionVariants.1.member.initialInstanceCount' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1"
    ]
    memory = MODEL.shape_for("ServerlessMemorySizeInMB").metadata
    assert (memory["min"], memory["max"]) == (1024, 6144)
    where = "'productionVariants.1.member.serverlessConfig.memorySizeInMB'"
    for size, rule in (
        (512, "greater than or equal to 1024"),
        (8192, "less than or equal to 6144"),
    ):
        serverless = {"MemorySizeInMB": size, "MaxConcurrency": 5}
        found = violations("CreateEndpointConfig", config(variant(ServerlessConfig=serverless)))
        assert found == [
            f"Value '{size}' at {where} failed to satisfy constraint: Member must have value {rule}"
        ]
    # Float shapes read as Java prints doubles.
    assert violations("CreateEndpointConfig", config(variant(InitialVariantWeight=-1))) == [
        "Value '-1.0' at 'productionVariants.1.member.initialVariantWeight' failed to satisfy "
        "constraint: Member must have value greater than or equal to 0.0"
    ]
    assert violations("ListEndpoints", {"MaxResults": 101}) == [
        "Value '101' at 'maxResults' failed to satisfy constraint: "
        "Member must have value less than or equal to 100"
    ]


def test_enum_lists_the_whole_value_set() -> None:
    found = violations("CreateEndpointConfig", config(variant(InstanceType="ml.nope")))
    allowed = MODEL.shape_for("ProductionVariantInstanceType").metadata["enum"]
    assert found == [
        "Value 'ml.nope' at 'productionVariants.1.member.instanceType' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
    ]
    assert "ml.m5.large" in allowed


def test_scalars_in_lists_and_maps_are_reported_at_the_container() -> None:
    vpc = {"SecurityGroupIds": ["sg_1", "sg-2"], "Subnets": []}
    found = violations("CreateModel", {"ModelName": "m", "VpcConfig": vpc})
    assert found == [
        "Value '[sg_1, sg-2]' at 'vpcConfig.securityGroupIds' failed to satisfy constraint: "
        "Member must satisfy constraint: [Member must have length less than or equal to 32, "
        "Member must have length greater than or equal to 0, "
        f"Member must satisfy regular expression pattern: {pattern_of('SecurityGroupId')}]",
        "Value '[]' at 'vpcConfig.subnets' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1",
    ]
    container = {"Image": "img:1", "Environment": {"1BAD": "x", "GOOD": "y"}}
    found = violations("CreateModel", {"ModelName": "m", "PrimaryContainer": container})
    assert found == [
        "Value '{1BAD=x, GOOD=y}' at 'primaryContainer.environment' failed to satisfy "
        "constraint: Map keys must satisfy constraint: [Member must have length less than or "
        "equal to 1024, Member must have length greater than or equal to 0, Member must satisfy "
        f"regular expression pattern: {pattern_of('EnvironmentKey')}]"
    ]


def test_java_patterns_are_translated() -> None:
    # TagKey is [\p{L}\p{Z}\p{N}_.:/=+\-@]*: Unicode letters pass, a control character fails.
    tags = [{"Key": "équipe ü", "Value": "données"}, {"Key": "ok", "Value": "bad\u0001"}]
    found = violations("AddTags", {"ResourceArn": ARN, "Tags": tags})
    assert found == [
        "Value 'bad\u0001' at 'tags.2.member.value' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {pattern_of('TagValue')}"
    ]
    patterns = {MODEL.shape_for(n).metadata.get("pattern") for n in MODEL.shape_names} - {None}
    untranslated = [p for p in patterns if validation._regex(str(p)) is None]
    assert untranslated == []


def test_local_model_paths_are_the_documented_extension() -> None:
    for location in ("/models/model.tar.gz", "./build/model", "file:///m/model.tar.gz"):
        container = {"Image": "img:1", "ModelDataUrl": location}
        assert violations("CreateModel", {"ModelName": "m", "PrimaryContainer": container}) == []
    container = {"Image": "img:1", "ModelDataUrl": "ftp://host/model.tar.gz"}
    found = violations("CreateModel", {"ModelName": "m", "PrimaryContainer": container})
    assert [v.split(" failed")[0] for v in found] == [
        "Value 'ftp://host/model.tar.gz' at 'primaryContainer.modelDataUrl'"
    ]


VALID: dict[str, dict[str, Any]] = {
    "CreateModel": {
        "ModelName": "sklearn-iris",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {
            "Image": "000000000000.dkr.ecr.us-east-1.amazonaws.com/sklearn:1",
            "ModelDataUrl": "s3://bucket/models/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "LOG_LEVEL": "info"},
            "Mode": "SingleModel",
        },
        "Tags": [{"Key": "team", "Value": "ml"}],
        "EnableNetworkIsolation": False,
    },
    "CreateEndpointConfig": config(
        variant(InstanceType="ml.m5.large", InitialVariantWeight=1.0),
        variant(
            VariantName="Serverless",
            ServerlessConfig={"MemorySizeInMB": 2048, "MaxConcurrency": 5},
        ),
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://bucket/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    ),
    "CreateEndpoint": {"EndpointName": "ep-1", "EndpointConfigName": "cfg", "Tags": []},
    "UpdateEndpointWeightsAndCapacities": {
        "EndpointName": "ep-1",
        "DesiredWeightsAndCapacities": [
            {"VariantName": "AllTraffic", "DesiredWeight": 0.5, "DesiredInstanceCount": 2}
        ],
    },
    "ListEndpoints": {
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 10,
        "NameContains": "ep-",
        "CreationTimeAfter": "2024-01-01T00:00:00Z",
        "CreationTimeBefore": 1_900_000_000.5,
        "StatusEquals": "InService",
    },
}


@pytest.mark.parametrize("operation", sorted(VALID))
def test_valid_input_passes(operation: str) -> None:
    assert violations(operation, VALID[operation]) == []
    validate_input(operation, VALID[operation])


def test_unknown_members_are_ignored() -> None:
    validate_input("DescribeEndpoint", {"EndpointName": "ep", "NotInTheModel": {"x": [1]}})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            config(variant(InitialInstanceCount="1")),
            "STRING_VALUE can not be converted to an Integer "
            "(at 'productionVariants.1.member.initialInstanceCount')",
        ),
        (config(variant(InitialInstanceCount=1.5)), "NUMBER_VALUE can not be converted"),
        (config(variant(InitialInstanceCount=True)), "TRUE_VALUE can not be converted"),
        (
            {"EndpointConfigName": "cfg", "ProductionVariants": {"VariantName": "a"}},
            "Start of structure or map found where not expected. (at 'productionVariants')",
        ),
        (config(variant(ModelName=["m"])), "Start of list found where not expected"),
        (config(variant(), Tags=[{"Key": 7, "Value": "v"}]), "NUMBER_VALUE"),
        # A type error anywhere wins over the validation errors before it.
        (config(variant(ModelName="bad name"), KmsKeyId=1), "(at 'kmsKeyId')"),
    ],
)
def test_wrong_json_type_is_a_serialization_exception(params: dict[str, Any], message: str) -> None:
    error = refusal("CreateEndpointConfig", params)
    assert error.code == "SerializationException"
    assert message in error.message


def test_timestamps_take_epoch_or_iso8601() -> None:
    for stamp in (0, 1_700_000_000, 1.7e9, "2024-05-01T12:00:00+00:00", "2024-05-01"):
        assert violations("ListEndpoints", {"CreationTimeAfter": stamp}) == []
    assert refusal("ListEndpoints", {"CreationTimeAfter": "yesterday"}).code == (
        "SerializationException"
    )


def test_unknown_operation_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="NoSuchOperation"):
        violations("NoSuchOperation", {})


@pytest.mark.parametrize("operation", HOSTING_OPERATIONS)
def test_every_hosting_operation_can_be_walked(operation: str) -> None:
    found = violations(operation, {})
    assert all(v.endswith("failed to satisfy constraint: Member must not be null") for v in found)
    if found:
        assert refusal(operation, {}).code == "ValidationException"
    else:
        validate_input(operation, {})


def _fits_endpoint_name(name: str) -> bool:
    """An independent reading of EndpointName: 1-63 ASCII alnum or '-', alnum at both ends."""
    alnum = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return (
        0 < len(name) <= 63
        and set(name) <= alnum | {"-"}
        and name[0] in alnum
        and name[-1] in alnum
    )


def test_the_property_below_reads_the_model_it_claims_to() -> None:
    describe = MODEL.operation_model("DescribeEndpoint").input_shape
    assert describe is not None
    shape = describe.members["EndpointName"]
    assert shape.metadata["pattern"] == "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    assert shape.metadata["max"] == 63


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"[a-zA-Z0-9-]{0,70}", fullmatch=True))
def test_endpoint_names_pass_exactly_when_they_fit_the_model(name: str) -> None:
    try:
        validate_input("DescribeEndpoint", {"EndpointName": name})
    except AwsError as error:
        assert error.code == "ValidationException"
        assert not _fits_endpoint_name(name)
    else:
        assert _fits_endpoint_name(name)


def test_validation_costs_microseconds() -> None:
    params = VALID["CreateEndpointConfig"] | {"Tags": [{"Key": "team", "Value": "ml"}]}
    validate_input("CreateEndpointConfig", params)  # compiles the operation once
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        validate_input("CreateEndpointConfig", params)
    average_us = (time.perf_counter() - start) / rounds * 1e6
    print(f"validate_input(CreateEndpointConfig): {average_us:.1f} us per call")


# ---- CreateModel's Environment limits (botocore's model, plus what AWS documents beyond it) ----
ENV_VALUE_RULES = (
    "[Member must have length less than or equal to 1024, Member must have length greater "
    "than or equal to 0, Member must satisfy regular expression pattern: [\\S\\s]*]"
)


def model_with(**container: Any) -> dict[str, Any]:
    return {"ModelName": "m", "PrimaryContainer": {"Image": "img:1", **container}}


def test_environment_over_100_entries_is_awss_message() -> None:
    env = {f"K{i}": "v" for i in range(101)}
    error = refusal("CreateModel", model_with(Environment=env))
    assert error.code == "ValidationException"
    assert error.message == (
        f"1 validation error detected: Value '{{{', '.join(f'K{i}=v' for i in range(101))}}}' "
        "at 'primaryContainer.environment' failed to satisfy constraint: Member must have "
        "length less than or equal to 100"
    )
    assert violations("CreateModel", model_with(Environment=dict(list(env.items())[:100]))) == []


def test_environment_value_over_1024_is_awss_map_value_message() -> None:
    # AWS's own answer (aws/sagemaker-sparkml-serving-container#12), at a pipeline's 2nd container.
    containers = [{"Image": "a:1"}, {"Image": "b:1", "Environment": {"SCHEMA": "x" * 1025}}]
    found = violations("CreateModel", {"ModelName": "m", "Containers": containers})
    assert found == [
        f"Value '{{SCHEMA={'x' * 1025}}}' at 'containers.2.member.environment' failed to "
        f"satisfy constraint: Map value must satisfy constraint: {ENV_VALUE_RULES}"
    ]
    assert violations("CreateModel", model_with(Environment={"SCHEMA": "x" * 1024})) == []


def test_environment_violations_are_aggregated_with_the_rest() -> None:
    env = {"1BAD": "x", "LONG": "y" * 1025}
    error = refusal("CreateModel", {**model_with(Environment=env), "ModelName": "-bad"})
    assert error.message.startswith("3 validation errors detected: Value '-bad' at 'modelName'")
    parts = error.message.split("; ")
    assert parts[1].endswith("Map keys must satisfy constraint: [Member must have length less "
                             "than or equal to 1024, Member must have length greater than or "
                             "equal to 0, Member must satisfy regular expression pattern: "
                             "[a-zA-Z_][a-zA-Z0-9_]*]")  # fmt: skip
    assert parts[2].endswith(f"Map value must satisfy constraint: {ENV_VALUE_RULES}")


def test_environment_total_over_32_kb_is_refused_at_create_model() -> None:
    # 32 entries of 1024 bytes (4-byte key + 1020-byte value) are exactly 32 KB: allowed.
    exactly = {f"K{i:03d}": "v" * 1020 for i in range(32)}
    assert violations("CreateModel", model_with(Environment=exactly)) == []
    over = {**exactly, "X": "1"}
    error = refusal("CreateModel", model_with(Environment=over))
    assert error.message == (
        "1 validation error detected: Value at 'primaryContainer.environment' failed to "
        "satisfy constraint: Member must have a combined length of all keys and values less "
        "than or equal to 32768 bytes"
    )


def test_environment_total_counts_every_container_of_the_request() -> None:
    half = {f"K{i:03d}": "v" * 1020 for i in range(17)}  # 17 KB each, 34 KB together
    containers = [{"Image": "a:1", "Environment": half}, {"Image": "b:1", "Environment": half}]
    found = violations("CreateModel", {"ModelName": "m", "Containers": containers})
    assert found == [
        "Value at 'containers' failed to satisfy constraint: Member must have a combined "
        "length of all keys and values less than or equal to 32768 bytes"
    ]
    other = {f"J{i:03d}": "v" * 1020 for i in range(17)}
    one = [{"Image": "a:1"}, {"Image": "b:1", "Environment": {**half, **other}}]
    found = violations("CreateModel", {"ModelName": "m", "Containers": one})
    assert [f.split(" failed")[0] for f in found] == ["Value at 'containers.2.member.environment'"]


def test_environment_limits_are_bytes_as_aws_documents() -> None:
    # 600 characters pass the model's length; as UTF-8 they are 1200 bytes, over AWS's 1024.
    found = violations("CreateModel", model_with(Environment={"K": "é" * 600}))
    assert found == [
        f"Value '{{K={'é' * 600}}}' at 'primaryContainer.environment' failed to satisfy "
        "constraint: Map value must satisfy constraint: [Member must have length less than or "
        "equal to 1024 bytes]"
    ]
    assert violations("CreateModel", model_with(Environment={"K": "é" * 512})) == []


def test_what_create_model_accepts_the_endpoint_spec_accepts() -> None:
    # The spec (emulator.spec) checks the same limits at CreateEndpoint: nothing CreateModel
    # lets through may fail there with a different message.
    from smlocal.emulator.spec import build_spec

    for env in (
        {f"K{i:03d}": "v" * 1020 for i in range(32)},
        {"K": "é" * 512},
        {f"K{i}": "" for i in range(100)},
    ):
        assert violations("CreateModel", model_with(Environment=env)) == []
        build_spec(name="ep", variants=[{"image": "img:1", "env": env}])
