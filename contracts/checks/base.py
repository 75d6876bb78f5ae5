"""A live check: its identity plus the function that judges a running container."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from smlocal.contracts.context import LiveContext
from smlocal.contracts.model import CheckInfo, Outcome

__all__ = ["LiveCheck"]


@dataclass(frozen=True)
class LiveCheck:
    info: CheckInfo
    run: Callable[[LiveContext], Outcome]
