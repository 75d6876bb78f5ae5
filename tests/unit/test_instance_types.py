"""The instance-type table: complete against botocore, AWS's figures, and typos a user can read."""

from __future__ import annotations

import datetime
import json
from importlib import resources

import botocore
import botocore.session
import pytest
from botocore.model import StringShape
from hypothesis import given
from hypothesis import strategies as st

from smlocal.emulator.errors import ConfigError
from smlocal.emulator.instance_types import (
    INSTANCE_TYPES,
    TABLE_AS_OF,
    TABLE_SOURCES,
    InstanceType,
    lookup_instance_type,
)

_SHAPE = (
    botocore.session.get_session()
    .get_service_model("sagemaker")
    .shape_for("ProductionVariantInstanceType")
)
assert isinstance(_SHAPE, StringShape)
BOTOCORE_TYPES = set(_SHAPE.enum)
# Types the table knows although the installed botocore does not list them, each with why.
EXTRAS: dict[str, str] = {}

GRAVITON_FAMILIES = {
    "ml.m6g",
    "ml.m6gd",
    "ml.c6g",
    "ml.c6gd",
    "ml.c6gn",
    "ml.r6g",
    "ml.r6gd",
    "ml.c7g",
    "ml.r7gd",
    "ml.m8g",
    "ml.c8g",
    "ml.r8g",
}


def test_every_botocore_hosting_type_is_in_the_table() -> None:
    missing = sorted(BOTOCORE_TYPES - set(INSTANCE_TYPES))
    assert not missing, (
        f"botocore {botocore.__version__} lists hosting instance types that "
        f"emulator/instance_types.json lacks: {missing}; add their AWS figures"
    )


def test_the_table_has_no_type_botocore_lacks_unless_explained() -> None:
    extra = set(INSTANCE_TYPES) - BOTOCORE_TYPES - set(EXTRAS)
    assert not extra, f"not in botocore {botocore.__version__}'s model: {sorted(extra)}"


def test_the_table_says_when_and_where_its_figures_come_from() -> None:
    assert datetime.date.fromisoformat(TABLE_AS_OF) <= datetime.date.today()
    assert any("docs.aws.amazon.com/ec2" in source for source in TABLE_SOURCES)
    raw = json.loads(
        resources.files("smlocal.emulator").joinpath("instance_types.json").read_text()
    )
    assert len(raw["rows"]) == len(INSTANCE_TYPES)


@pytest.mark.parametrize(
    ("name", "vcpus", "memory_gib", "gpus", "gpu_memory_gib", "arch"),
    [
        # AWS's EC2 instance type specifications (gp, co, mo, ac tables)
        ("ml.m5.large", 2, 8, 0, 0, "amd64"),
        ("ml.t2.medium", 2, 4, 0, 0, "amd64"),
        ("ml.c4.large", 2, 3.75, 0, 0, "amd64"),
        ("ml.c4.8xlarge", 36, 60, 0, 0, "amd64"),
        ("ml.c5.9xlarge", 36, 72, 0, 0, "amd64"),
        ("ml.m4.10xlarge", 40, 160, 0, 0, "amd64"),
        ("ml.r5.24xlarge", 96, 768, 0, 0, "amd64"),
        ("ml.m7i.48xlarge", 192, 768, 0, 0, "amd64"),
        ("ml.r8g.medium", 1, 8, 0, 0, "arm64"),
        ("ml.c7g.large", 2, 4, 0, 0, "arm64"),
        ("ml.m6g.16xlarge", 64, 256, 0, 0, "arm64"),
        ("ml.g4dn.12xlarge", 48, 192, 4, 64, "amd64"),
        ("ml.g5.12xlarge", 48, 192, 4, 96, "amd64"),
        ("ml.g5.48xlarge", 192, 768, 8, 192, "amd64"),
        ("ml.g6e.xlarge", 4, 32, 1, 48, "amd64"),
        ("ml.g7e.12xlarge", 48, 512, 2, 192, "amd64"),
        ("ml.p3.2xlarge", 8, 61, 1, 16, "amd64"),
        ("ml.p4d.24xlarge", 96, 1152, 8, 320, "amd64"),
        ("ml.p5.48xlarge", 192, 2048, 8, 640, "amd64"),
        ("ml.p6e-gb200.36xlarge", 144, 960, 4, 740, "arm64"),
    ],
)
def test_figures_match_aws_published_specs(
    name: str, vcpus: int, memory_gib: float, gpus: int, gpu_memory_gib: float, arch: str
) -> None:
    spec = lookup_instance_type(name)
    assert (spec.vcpus, spec.memory_gib, spec.gpus, spec.gpu_memory_gib, spec.arch) == (
        vcpus,
        memory_gib,
        gpus,
        gpu_memory_gib,
        arch,
    )


@pytest.mark.parametrize(
    ("name", "vcpus", "memory_gib", "chips", "chip_memory_gib", "model"),
    [
        ("ml.inf1.xlarge", 4, 8, 1, 8, "AWS Inferentia"),
        ("ml.inf2.xlarge", 4, 16, 1, 32, "AWS Inferentia2"),
        ("ml.inf2.48xlarge", 192, 768, 12, 384, "AWS Inferentia2"),
        ("ml.trn1.32xlarge", 128, 512, 16, 512, "AWS Trainium"),
        ("ml.trn2.48xlarge", 192, 2048, 16, 1536, "AWS Trainium2"),
        ("ml.dl1.24xlarge", 96, 768, 8, 256, "Habana Gaudi"),
    ],
)
def test_inferentia_trainium_and_gaudi_are_accelerators_not_gpus(
    name: str, vcpus: int, memory_gib: float, chips: int, chip_memory_gib: float, model: str
) -> None:
    spec = lookup_instance_type(name)
    assert spec.gpus == 0 and spec.gpu_memory_gib == 0
    assert (spec.vcpus, spec.memory_gib, spec.accelerators, spec.accelerator_memory_gib) == (
        vcpus,
        memory_gib,
        chips,
        chip_memory_gib,
    )
    assert spec.accelerator == model


def test_graviton_types_are_arm64_and_the_rest_amd64_but_grace() -> None:
    for spec in INSTANCE_TYPES.values():
        expected = "arm64" if spec.family in GRAVITON_FAMILIES | {"ml.p6e-gb200"} else "amd64"
        assert spec.arch == expected, spec.name


def test_every_row_is_consistent() -> None:
    for spec in INSTANCE_TYPES.values():
        assert spec.vcpus > 0 and spec.memory_gib > 0, spec.name
        assert (spec.gpus > 0) == (spec.gpu_memory_gib > 0), spec.name
        assert (spec.accelerators > 0) == (spec.accelerator_memory_gib > 0), spec.name
        assert not (spec.gpus and spec.accelerators), spec.name
        assert bool(spec.accelerator) == bool(spec.gpus or spec.accelerators), spec.name
        if spec.gpus:
            assert spec.accelerator.startswith("NVIDIA"), spec.name


def test_existing_constructors_keep_working() -> None:
    spec = InstanceType("ml.custom.large", 2, 4)
    assert (spec.gpus, spec.gpu_memory_gib, spec.accelerators, spec.arch) == (0, 0.0, 0, "amd64")
    assert spec.memory_bytes == 4 * 1024**3
    assert InstanceType("ml.x.large", 4, 16, gpus=1).gpus == 1
    assert InstanceType("ml.x.large", 2, 4, arch="arm64").arch == "arm64"


def test_describe_reads_as_a_sentence() -> None:
    assert lookup_instance_type("ml.g5.12xlarge").describe() == (
        "ml.g5.12xlarge: 48 vCPU, 192 GiB, 4 x NVIDIA A10G GPU (96 GiB)"
    )
    assert lookup_instance_type("ml.c7g.large").describe() == "ml.c7g.large: 2 vCPU, 4 GiB, arm64"


def _message(name: str) -> str:
    with pytest.raises(ConfigError) as caught:
        lookup_instance_type(name)
    return str(caught.value)


def test_a_misspelt_size_names_the_closest_types_first() -> None:
    message = _message("ml.m5.lrage")
    assert message.startswith("unknown instance type 'ml.m5.lrage': did you mean ml.m5.large")
    assert "ml.m5 comes in ml.m5.large, ml.m5.xlarge" in message


def test_a_missing_ml_prefix_is_named() -> None:
    assert _message("m5.large") == (
        "unknown instance type 'm5.large': SageMaker instance types start with 'ml.'; "
        "did you mean ml.m5.large?"
    )


def test_a_truncated_size_suggests_the_full_one() -> None:
    message = _message("ml.g5.12xl")
    assert "did you mean ml.g5.12xlarge" in message
    assert "ml.g5.48xlarge" in message


@pytest.mark.parametrize(
    ("typed", "meant"), [("ML.M5.LARGE", "ml.m5.large"), (" ml.c7g.large ", "ml.c7g.large")]
)
def test_case_and_spaces_are_named(typed: str, meant: str) -> None:
    assert _message(typed).endswith(f"did you mean {meant}?")


def test_a_family_without_a_size_lists_its_sizes() -> None:
    assert _message("ml.p4d") == (
        "unknown instance type 'ml.p4d': ml.p4d is a family; name one of its sizes: ml.p4d.24xlarge"
    )


def test_nonsense_shows_the_shape_of_a_type_name() -> None:
    message = _message("banana")
    assert "ml.<family>.<size>" in message and "ml.m5.large" in message
    for jargon in ("validation", "pydantic", "value_error", "Traceback"):
        assert jargon not in message


def test_a_huge_input_is_shortened_in_the_message() -> None:
    assert len(_message("x" * 100_000)) < 400


@given(st.text(max_size=200))
def test_any_string_is_a_type_or_a_config_error(name: str) -> None:
    try:
        spec = lookup_instance_type(name)
    except ConfigError as error:
        assert str(error).startswith("unknown instance type ")
    else:
        assert spec.name == name


@given(st.sampled_from(sorted(INSTANCE_TYPES)), st.integers(min_value=0), st.characters())
def test_a_one_character_slip_is_a_type_or_names_close_types(
    name: str, position: int, char: str
) -> None:
    at = position % (len(name) + 1)
    typo = name[:at] + char + name[at:]
    try:
        lookup_instance_type(typo)
    except ConfigError as error:
        assert "did you mean" in str(error) or "comes in" in str(error)
