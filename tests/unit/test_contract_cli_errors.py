"""`smlocal contract-test` on a spec it cannot use: exit 2 (bad input), nothing recorded.

These never reach Docker: the spec is read before anything else, so CI sees a usage error
(exit 2), never a failed image (exit 1) or a recorded pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from smlocal.cli import app


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SMLOCAL_HOME", str(home))
    return home


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('name: "caf\xe9"\n'.encode("latin-1"), "is not UTF-8"),
        (b"\xff\xfe\x00n\x00a\x00m\x00e", "is not UTF-8"),
        (b"", "is empty"),
        (b"# just a comment\n", "is empty"),
    ],
)
def test_unusable_spec_exits_2_with_a_message_and_records_nothing(
    home: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content)
    result = CliRunner().invoke(
        app, ["contract-test", "smlocal-fixture/echo:latest", "--spec", str(spec)]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (home / "contracts").exists()


def test_help_lists_every_exit_code() -> None:
    result = CliRunner().invoke(app, ["contract-test", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for code in ("0 ", "1 ", "2 ", "130 "):
        assert f"{code}" in text
    assert "interrupted" in text.lower()
