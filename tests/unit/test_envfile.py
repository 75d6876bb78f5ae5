"""--env / --env-file parsing: the .env format, clear errors, flags win over the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smlocal.emulator.envfile import parse_env
from smlocal.emulator.errors import ConfigError


def test_file_then_flags(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\n\nexport A=1\nB='two words'\nC=\"3\"\nD=x=y\nE=it's\n", encoding="utf-8"
    )
    assert parse_env(["A=override", "F="], env_file) == {
        "A": "override",
        "B": "two words",
        "C": "3",
        "D": "x=y",
        "E": "it's",
        "F": "",
    }


@pytest.mark.parametrize("line", ["NOEQUALS", "=value"])
def test_bad_file_line_names_the_line(tmp_path: Path, line: str) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"A=1\n{line}\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=VALUE"):
        parse_env([], env_file)


def test_unreadable_and_binary_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read --env-file"):
        parse_env([], tmp_path / "missing")
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_env([], binary)


@given(st.lists(st.text(max_size=20)))
def test_any_flag_text_parses_or_is_a_config_error(pairs: list[str]) -> None:
    try:
        env = parse_env(pairs)
    except ConfigError:
        assert any("=" not in p or p.startswith("=") for p in pairs)
    else:
        assert all(key and "=" not in key for key in env)
