"""The one error monitoring raises on purpose: the inputs cannot be used, so nothing was checked.

:class:`MonitorInputError` (exit 2, ``ExitCode.USAGE``) covers a dataset or capture that cannot
be read or parsed, a baseline directory without its files, an empty window, and an S3, SNS or
CloudWatch call that failed. Violations found are not an error: ``run`` returns them and the CLI
exits 1.
"""

from __future__ import annotations

from smlocal.emulator.errors import ExitCode, SmlocalError

__all__ = ["MonitorInputError"]


class MonitorInputError(SmlocalError):
    """A dataset, capture, baseline or AWS call that stops monitoring from running."""

    exit_code = ExitCode.USAGE
