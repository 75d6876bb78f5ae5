"""The `smlocal` commands for the contract capability (registered on the main typer app)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this capability's commands to ``app``."""
