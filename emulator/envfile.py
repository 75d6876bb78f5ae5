"""Container environment from ``--env KEY=VALUE`` pairs and an ``--env-file``.

The file format is the common ``.env`` one: ``KEY=VALUE`` per line, ``#`` comments and blank
lines ignored, an optional leading ``export``, one pair of surrounding quotes stripped. Pairs
given on the command line win over the file. SageMaker's own limits on the result (1024 bytes
a key or value, 32 KB in all) are checked where the spec is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from smlocal.emulator.errors import ConfigError

__all__ = ["parse_env"]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_env(pairs: Iterable[str], env_file: Path | None = None) -> dict[str, str]:
    """The environment: the file's pairs, then ``pairs`` over them (ConfigError if malformed)."""
    env: dict[str, str] = {}
    if env_file is not None:
        try:
            lines = env_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ConfigError(f"cannot read --env-file {env_file}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"--env-file {env_file} is not UTF-8 text") from None
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.removeprefix("export ").partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{env_file}:{number}: expected KEY=VALUE, got {line!r}")
            env[key.strip()] = _unquote(value.strip())
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env
