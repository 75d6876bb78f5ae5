"""StateDir: endpoint names from users never lead outside $SMLOCAL_HOME/logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smlocal.emulator.errors import ConfigError
from smlocal.emulator.state import StateDir


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "", "-a", "a-", "a_b", "x" * 64, "é"])
def test_what_is_no_endpoint_name_is_refused_before_the_filesystem(
    tmp_path: Path, name: str
) -> None:
    state = StateDir(tmp_path / "home")
    with pytest.raises(ConfigError, match="not an endpoint name"):
        state.log_file(name)
    assert not (tmp_path / "home").exists()


@given(st.text(max_size=80))
def test_any_name_is_refused_or_stays_in_logs(name: str) -> None:
    root = Path("/nonexistent-smlocal-home")
    try:
        path = StateDir(root).log_path(name)
    except ConfigError:
        return
    assert path.parent == root / "logs"
    assert path.name == f"{name}.log"


def test_log_path_makes_nothing_log_file_makes_an_owner_only_file(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert not state.log_path("iris").exists()
    made = state.log_file("iris")
    assert made == state.log_path("iris")
    assert made.stat().st_mode & 0o777 == 0o600
