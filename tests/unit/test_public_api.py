"""The public API: every name in smlocal.__all__ resolves, lazily, to the package's own object."""

from __future__ import annotations

import subprocess
import sys

import pytest

import smlocal


@pytest.mark.parametrize("name", smlocal.__all__)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(smlocal, name)
    assert value is not None
    assert getattr(value, "__module__", "smlocal").startswith("smlocal.")


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = smlocal.no_such_thing  # type: ignore[attr-defined]


def test_import_smlocal_stays_light() -> None:
    code = (
        "import sys, smlocal; "
        "heavy = [m for m in ('docker', 'boto3', 'locust', 'pydantic', 'uvicorn') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_bare_folder_import_is_refused() -> None:
    # From the checkout root the folder `emulator/` is importable by path; it must refuse
    # rather than give a second copy of smlocal.emulator.
    from pathlib import Path

    root = Path(smlocal.__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", "import emulator"],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert result.returncode != 0
    assert "import smlocal.emulator, not emulator" in result.stderr


def test_exit_codes_are_one_table() -> None:
    from smlocal.emulator.errors import ExitCode
    from smlocal.promote.errors import GateRefusedError

    assert smlocal.ConfigError.exit_code == ExitCode.USAGE == 2
    assert smlocal.ImageNotFoundError.exit_code == ExitCode.USAGE
    assert smlocal.ArtifactError.exit_code == ExitCode.USAGE
    assert smlocal.EndpointFailedError.exit_code == ExitCode.FAILED == 1
    assert GateRefusedError.exit_code == ExitCode.REFUSED == 3
    assert ExitCode.INTERRUPTED == 130
