"""The errors promote and cleanup raise; all derive from :class:`emulator.errors.SmlocalError`.

SmlocalError
├── ConfigError (emulator)   a flag, profile or spec SageMaker would reject (before any call)
└── PromoteError
    ├── GateRefusedError     no passing contract-test record for image + model + spec
    ├── StepFailedError      an AWS step failed; carries the step, AWS's error, the manifest
    └── CleanupError         cleanup could not delete everything; the manifest keeps the rest
"""

from __future__ import annotations

from pathlib import Path

from smlocal.emulator.errors import ExitCode, SmlocalError

__all__ = ["CleanupError", "GateRefusedError", "PromoteError", "StepFailedError"]


class PromoteError(SmlocalError):
    """Base of promote's and cleanup's own errors."""


class GateRefusedError(PromoteError):
    """No passing contract-test record, or the quality gate missed (exit 3, so CI can tell a
    refusal from a failed step)."""

    exit_code = ExitCode.REFUSED


class StepFailedError(PromoteError):
    """A step failed. What it left behind is in ``manifest``; cleanup can remove it."""

    def __init__(self, step: str, reason: str, manifest: Path) -> None:
        super().__init__(
            f"step {step!r} failed: {reason}\n"
            f"what was made so far is recorded in {manifest}; "
            f"remove it with `smlocal cleanup --manifest {manifest}`"
        )
        self.step = step
        self.reason = reason
        self.manifest = manifest


class CleanupError(PromoteError):
    """Some resources could not be deleted; they stay in the manifest for the next run."""
