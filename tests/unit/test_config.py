"""Project configuration: endpoints with variants, profiles, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from smlocal.emulator.config import find_config_file, load_config
from smlocal.emulator.errors import ConfigError

CONFIG = """
default_profile = "dev"

[endpoints.iris]
startup_timeout_s = 120
[[endpoints.iris.variants]]
name = "A"
image = "smlocal/sklearn-iris:latest"
model = "build/model.tar.gz"
weight = 3
[[endpoints.iris.variants]]
name = "B"
image = "smlocal/sklearn-iris:v2"
model = "s3://bucket/model.tar.gz"
weight = 1

[promote]
region = "eu-west-1"

[profiles.dev]
[profiles.prod.endpoints.iris]
startup_timeout_s = 600
[profiles.prod.promote]
min_instances = 2
"""


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "smlocal.toml"
    path.write_text(CONFIG)
    return path


def test_endpoint_with_weighted_variants(config_file: Path) -> None:
    spec = load_config(config_file).endpoint()
    assert spec.name == "iris"
    assert [(v.name, v.weight) for v in spec.variants] == [("A", 3), ("B", 1)]
    assert spec.variants[0].model == str(config_file.parent / "build" / "model.tar.gz")
    assert spec.variants[1].model == "s3://bucket/model.tar.gz"
    assert spec.startup_timeout_s == 120


def test_profile_merges_over_the_base(config_file: Path) -> None:
    config = load_config(config_file, "prod")
    assert config.endpoint("iris").startup_timeout_s == 600
    assert config.settings["promote"] == {"region": "eu-west-1", "min_instances": 2}
    assert len(config.endpoint("iris").variants) == 2


def test_default_profile_applies(config_file: Path) -> None:
    assert load_config(config_file).profile == "dev"


def test_unknown_profile_names_the_known_ones(config_file: Path) -> None:
    with pytest.raises(ConfigError, match="dev, prod"):
        load_config(config_file, "staging")


def test_unknown_endpoint(config_file: Path) -> None:
    with pytest.raises(ConfigError, match="no endpoint 'nope'"):
        load_config(config_file).endpoint("nope")


def test_bad_field_names_file_endpoint_and_field(tmp_path: Path) -> None:
    path = tmp_path / "smlocal.toml"
    path.write_text('[endpoints.x]\n[[endpoints.x.variants]]\nimage = "i"\ninstance_count = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path).endpoint()
    message = str(caught.value)
    assert str(path) in message
    assert "variants.0.instance_count" in message


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "smlocal.toml"
    path.write_text("[endpoints\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_pyproject_tool_table_is_found_from_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.smlocal.endpoints.e]\n[[tool.smlocal.endpoints.e.variants]]\nimage = "i"\n'
    )
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    found = find_config_file(sub)
    assert found == tmp_path / "pyproject.toml"
    assert load_config(found).endpoint().variants[0].image == "i"
