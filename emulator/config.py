"""Project configuration: endpoints (with variants) and per-environment profiles from TOML.

Read from ``smlocal.toml`` or the ``[tool.smlocal]`` table of ``pyproject.toml`` (the first
found walking up from the current directory), or an explicit path. Layout::

    default_profile = "dev"                 # optional

    [endpoints.iris]                        # one table per endpoint: EndpointSpec fields
    startup_timeout_s = 120
    [[endpoints.iris.variants]]             # 1-10 variants: VariantSpec fields
    name = "A"
    image = "smlocal/sklearn-iris:latest"
    model = "containers/sklearn/build/model.tar.gz"   # relative to the config file
    weight = 3

    [profiles.prod]                         # deep-merged over everything above
    [profiles.prod.endpoints.iris]
    startup_timeout_s = 600

Tables in a profile merge key by key; a list (such as ``variants``) replaces the list it
overrides. Anything else in the file (e.g. a ``[promote]`` table) is kept in ``settings`` for
the capability that owns it. Nothing is read at import time.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smlocal.emulator.errors import ConfigError
from smlocal.emulator.spec import EndpointSpec, build_spec

__all__ = ["ProjectConfig", "find_config_file", "load_config"]

CONFIG_FILE = "smlocal.toml"


def find_config_file(start: Path | None = None) -> Path | None:
    """``smlocal.toml``, or a ``pyproject.toml`` with ``[tool.smlocal]``, nearest ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "smlocal" in _read(pyproject).get("tool", {}):
            return pyproject
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class ProjectConfig:
    path: Path
    profile: str | None
    settings: dict[str, Any]

    @property
    def endpoint_names(self) -> list[str]:
        return sorted(self.settings.get("endpoints", {}))

    def endpoint(self, name: str | None = None) -> EndpointSpec:
        """The EndpointSpec named ``name`` (or the only one), model paths made absolute."""
        endpoints = self.settings.get("endpoints", {})
        if not isinstance(endpoints, dict) or not endpoints:
            raise ConfigError(f"{self.path} defines no [endpoints.NAME] table")
        if name is None:
            if len(endpoints) != 1:
                raise ConfigError(
                    f"{self.path} defines several endpoints ({', '.join(sorted(endpoints))}); "
                    "choose one with --endpoint"
                )
            name = next(iter(endpoints))
        if name not in endpoints:
            raise ConfigError(
                f"{self.path} has no endpoint {name!r}; it defines {', '.join(sorted(endpoints))}"
            )
        fields = dict(endpoints[name])
        variants = []
        for given in fields.get("variants", []):
            variant = dict(given) if isinstance(given, dict) else given
            model = variant.get("model") if isinstance(variant, dict) else None
            if isinstance(model, str) and "://" not in model:
                variant["model"] = str((self.path.parent / model).resolve())
            variants.append(variant)
        fields["variants"] = variants
        try:
            return build_spec(name=name, **fields)
        except ConfigError as error:
            raise ConfigError(f"{self.path}, endpoint {name!r}: {error}") from None


def load_config(path: Path | None = None, profile: str | None = None) -> ProjectConfig:
    """Read the project's configuration (``path`` or the nearest one) under ``profile``."""
    path = path or find_config_file()
    if path is None:
        raise ConfigError(
            f"no {CONFIG_FILE} (or [tool.smlocal] in pyproject.toml) here or above; "
            "pass --config FILE"
        )
    raw = _read(path)
    if path.name == "pyproject.toml":
        raw = raw.get("tool", {}).get("smlocal", {})
    profiles = raw.pop("profiles", {})
    chosen = profile or raw.pop("default_profile", None)
    raw.pop("default_profile", None)
    if chosen is not None:
        if chosen not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(f"{path} has no profile {chosen!r} (profiles: {known})")
        raw = _merge(raw, profiles[chosen])
    return ProjectConfig(path=path, profile=chosen, settings=raw)
