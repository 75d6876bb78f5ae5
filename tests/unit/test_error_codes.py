"""Every AWS error code the source tree raises is one botocore's models (or the table's extra
rows) know, so no typo becomes a KeyError and a plain 500 under a client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from smlocal.emulator.aws_errors import AwsError, error_status

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("emulator", "contracts", "loadtests", "promote", "monitor", "smlocal/cli")


def _raised_codes() -> dict[str, str]:
    """code -> where: the first argument of every AwsError(...) call with a literal code."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) == "AwsError"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    found.setdefault(node.args[0].value, where)
    return found


def test_every_raised_code_is_in_the_table() -> None:
    codes = _raised_codes()
    assert "ValidationException" in codes  # the scan finds the control plane's errors
    unknown = {}
    for code, where in codes.items():
        try:
            error_status(code)
        except KeyError:
            unknown[code] = where
    assert unknown == {}


def test_an_unknown_code_is_refused_where_it_is_made() -> None:
    with pytest.raises(ValueError, match="'ValidationErorr' is no error code"):
        AwsError("ValidationErorr", "typo")
    assert AwsError("ModelError", "fine").status == 424
