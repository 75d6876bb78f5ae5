"""Profiles from smlocal.toml or [tool.smlocal] in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from smlocal.emulator.errors import ConfigError
from smlocal.promote.config import find_project_root, load_profile

SMLOCAL_TOML = """
[promote]
region = "eu-west-1"
instance_type = "ml.m5.large"

[profiles.prod.promote]
instance_type = "ml.m5.xlarge"
min_instances = 2
"""


def test_profile_overrides_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "smlocal.toml").write_text(SMLOCAL_TOML)
    assert load_profile("prod", tmp_path) == {
        "region": "eu-west-1",
        "instance_type": "ml.m5.xlarge",
        "min_instances": 2,
    }
    assert load_profile(None, tmp_path)["instance_type"] == "ml.m5.large"


def test_pyproject_tool_table_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.smlocal.promote]\nregion = "us-west-2"\n'
        "[tool.smlocal.profiles.dev.promote]\nmax_instances = 1\n"
    )
    assert load_profile("dev", tmp_path) == {"region": "us-west-2", "max_instances": 1}


def test_smlocal_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.smlocal.promote]\nregion = "us-west-2"\n')
    (tmp_path / "smlocal.toml").write_text('[promote]\nregion = "eu-west-1"\n')
    assert load_profile(None, tmp_path) == {"region": "eu-west-1"}


def test_no_config_file_means_no_defaults(tmp_path: Path) -> None:
    assert load_profile(None, tmp_path) == {}


def test_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "smlocal.toml").write_text(SMLOCAL_TOML)
    with pytest.raises(ConfigError, match=r"no profile 'test' \(profiles: prod\)"):
        load_profile("test", tmp_path)


def test_a_typo_is_an_error_not_ignored(tmp_path: Path) -> None:
    (tmp_path / "smlocal.toml").write_text("[profiles.prod.promote]\ninstance_cout = 2\n")
    with pytest.raises(ConfigError, match=r"unknown key.*instance_cout"):
        load_profile("prod", tmp_path)


def test_project_root_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    (tmp_path / "smlocal.toml").write_text("")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_project_root(nested) == tmp_path.resolve()
