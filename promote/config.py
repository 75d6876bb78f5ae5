"""Promote's project defaults and per-environment profiles, from the project's config file.

The file is the one :mod:`emulator.config` reads (``smlocal.toml`` or ``[tool.smlocal]`` in
``pyproject.toml``, nearest the current directory); promote owns its ``[promote]`` table::

    [promote]                  # defaults for every profile
    region = "eu-west-1"
    instance_type = "ml.m5.large"

    [profiles.prod.promote]    # --profile prod merges this over the defaults
    instance_count = 2
    min_instances = 2
    max_instances = 8
    alarm_email = "oncall@example.com"

Flags given on the command line win over both. Unknown keys are an error, so a typo is not
silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smlocal.emulator.config import find_config_file, load_config
from smlocal.emulator.errors import ConfigError

__all__ = ["KEYS", "find_project_root", "load_profile"]

KEYS = frozenset(
    {
        "alarm_email",
        "async_output",
        "bucket",
        "data_capture",
        "endpoint_url",
        "instance_count",
        "instance_type",
        "latency_p99_ms",
        "max_instances",
        "min_instances",
        "region",
        "registry_url",
        "repository",
        "role_arn",
        "target_invocations",
        "wait_timeout",
    }
)


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory holding smlocal.toml or pyproject.toml; else ``start`` itself."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "smlocal.toml").is_file() or (directory / "pyproject.toml").is_file():
            return directory
    return here


def _checked(section: object, where: str) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(section) - KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}"
        )
    return dict(section)


def load_profile(
    profile: str | None, root: Path | None = None, *, config: Path | None = None
) -> dict[str, Any]:
    """Promote defaults merged with ``profile``'s overrides (empty without a config file).

    ``config`` names the file; otherwise the one nearest ``root`` (or the current directory).
    """
    path = config or find_config_file(root or Path.cwd())
    if path is None:
        if profile is not None:
            raise ConfigError(
                f"profile {profile!r} asked for, but there is no smlocal.toml "
                "(or [tool.smlocal] in pyproject.toml) here or above"
            )
        return {}
    project = load_config(path, profile)
    return _checked(project.settings.get("promote", {}), f"{path} [promote]")
