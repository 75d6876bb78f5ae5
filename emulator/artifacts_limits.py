"""Bounds on staging a model: how big, how compressible, how many members; and cancellation.

This module owns the numbers that keep a hostile or mistaken artifact from filling the disk
and the one way staging is stopped from outside:

* :class:`StagingLimits` — the expanded size cap (default :data:`DEFAULT_MAX_MODEL_BYTES`, or
  ``SMLOCAL_MAX_MODEL_BYTES``), the compression-ratio bomb guard (``SMLOCAL_MAX_MODEL_RATIO``,
  applied once the expansion passes ``ratio_min_bytes``) and the member count cap
  (``SMLOCAL_MAX_MODEL_MEMBERS``). Exceeding one is an :class:`ArtifactError` that names the
  limit and how to raise it.
* :func:`check_cancelled` — staging code calls it between archive members, between chunks read
  from the archive and between downloaded chunks; once the caller's ``threading.Event`` is set
  it raises :class:`StagingCancelledError`, and the staging code's ``finally`` removes whatever
  was half-written.

The default size cap is SageMaker's own bound: the model is extracted onto the instance's ML
storage volume (``ProductionVariant.VolumeSizeInGB``, 1-512 GB; AWS attaches a volume of up to
30 GB by default to hosting instances without instance storage), so an artifact that expands
beyond 30 GiB would not fit a default SageMaker instance either.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from smlocal.emulator.errors import ArtifactError

__all__ = [
    "DEFAULT_MAX_MODEL_BYTES",
    "DEFAULT_MAX_MODEL_MEMBERS",
    "DEFAULT_MAX_MODEL_RATIO",
    "DEFAULT_RATIO_MIN_BYTES",
    "StagingCancelledError",
    "StagingLimits",
    "check_cancelled",
    "human_bytes",
]

GIB = 1024**3
DEFAULT_MAX_MODEL_BYTES = 30 * GIB
"""30 GiB: the default ML storage volume of a SageMaker hosting instance (VolumeSizeInGB)."""
DEFAULT_MAX_MODEL_RATIO = 200.0
"""Expanded size over archive size beyond which an archive is taken for a decompression bomb
(weights compress ~1.1x, text and JSON 3-10x; a gzip of zeros ~1000x)."""
DEFAULT_RATIO_MIN_BYTES = 256 * 1024**2
"""The ratio guard applies only once the expansion passes this: small, very compressible
models (a sparse matrix, a config padded with zeros) are harmless."""
DEFAULT_MAX_MODEL_MEMBERS = 1_000_000

ENV_MAX_BYTES = "SMLOCAL_MAX_MODEL_BYTES"
ENV_MAX_RATIO = "SMLOCAL_MAX_MODEL_RATIO"
ENV_MAX_MEMBERS = "SMLOCAL_MAX_MODEL_MEMBERS"
_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": GIB, "T": 1024**4}


class StagingCancelledError(ArtifactError):
    """Staging was stopped by its caller (Ctrl-C, task cancellation); nothing partial is kept."""


@dataclass(frozen=True)
class StagingLimits:
    """What a model may expand to; see the module docstring for the defaults and their reasons."""

    max_bytes: int = DEFAULT_MAX_MODEL_BYTES
    """Cap on the staged model's total size (regular files' bytes)."""
    max_ratio: float = DEFAULT_MAX_MODEL_RATIO
    """Cap on expanded size / archive size, once the expansion passes ``ratio_min_bytes``."""
    ratio_min_bytes: int = DEFAULT_RATIO_MIN_BYTES
    max_members: int = DEFAULT_MAX_MODEL_MEMBERS
    """Cap on the number of archive members (or S3 objects)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StagingLimits:
        """The defaults, overridden by ``SMLOCAL_MAX_MODEL_BYTES`` (bytes; ``K``/``M``/``G``/``T``
        suffixes are powers of 1024), ``SMLOCAL_MAX_MODEL_RATIO`` and ``SMLOCAL_MAX_MODEL_MEMBERS``.
        """
        env = os.environ if environ is None else environ
        return cls(
            max_bytes=_parse_size(env, ENV_MAX_BYTES, DEFAULT_MAX_MODEL_BYTES),
            max_ratio=float(_parse_size(env, ENV_MAX_RATIO, int(DEFAULT_MAX_MODEL_RATIO))),
            max_members=_parse_size(env, ENV_MAX_MEMBERS, DEFAULT_MAX_MODEL_MEMBERS),
        )

    def check_size(self, label: str, total: int) -> None:
        if total > self.max_bytes:
            raise ArtifactError(
                f"cannot stage {label!r}: the model takes more than "
                f"{human_bytes(self.max_bytes)}, the limit on a model's size (default "
                f"{human_bytes(DEFAULT_MAX_MODEL_BYTES)}, a SageMaker hosting instance's default "
                f"ML storage volume); nothing was kept. If the model really is this big, raise "
                f"the limit: {ENV_MAX_BYTES}=<bytes, e.g. 64G> (the real endpoint then needs "
                f"VolumeSizeInGB to match)"
            )

    def check_ratio(self, label: str, total: int, archive_bytes: int) -> None:
        if total <= self.ratio_min_bytes or archive_bytes <= 0:
            return
        if total > self.max_ratio * archive_bytes:
            raise ArtifactError(
                f"cannot stage {label!r}: the {human_bytes(archive_bytes)} archive expands to "
                f"at least {human_bytes(total)}, over {self.max_ratio:g}x its size, the limit "
                f"that guards against decompression bombs; nothing was kept. If the model really "
                f"is this compressible, raise the limit: {ENV_MAX_RATIO}=<ratio>"
            )

    def check_members(self, label: str, count: int, what: str = "members") -> None:
        if count > self.max_members:
            raise ArtifactError(
                f"cannot stage {label!r}: it has more than {self.max_members:,} {what}, the "
                f"limit on a model's entries; nothing was kept. Raise it with "
                f"{ENV_MAX_MEMBERS}=<count>"
            )


def _parse_size(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    text = raw.upper().removesuffix("IB").removesuffix("B")
    unit = text[-1:] if text[-1:] in _SUFFIXES else ""
    number = text[: len(text) - len(unit)].strip()
    try:
        value = int(float(number) * _SUFFIXES[unit])
    except ValueError:
        value = 0
    if value <= 0:
        raise ArtifactError(
            f"{name}={raw!r} is not a positive number (e.g. {name}=64G or {name}=1000000)"
        )
    return value


def check_cancelled(label: str, cancel: threading.Event | None) -> None:
    """Raise :class:`StagingCancelledError` once ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise StagingCancelledError(f"staging {label!r} was cancelled; nothing partial was kept")


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
