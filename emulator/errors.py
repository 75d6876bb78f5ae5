"""The exception tree for everything smlocal raises on purpose, and the exit codes it maps to.

Every error a user can cause or meet derives from :class:`SmlocalError`; the CLI turns it into
a one-line message and its ``exit_code``, so a traceback always means a bug in smlocal.

    SmlocalError                                                        exit
    ├── ConfigError            bad spec, flag, env var, instance type,    2
    │                          endpoint name, port in use
    ├── ArtifactError          model source missing, unsafe or            2
    │                          unreadable archive, S3 failure
    ├── BackendError           the container engine is missing or         2
    │   │                      refused an operation
    │   └── ImageNotFoundError the image is not in the local engine       2
    ├── EndpointFailedError    an endpoint did not reach InService        1
    │                          (carries reason and logs)
    └── EndpointNotFoundError  no endpoint by that name                   1

:class:`ExitCode` is the one table of exit codes, for every command.
"""

from __future__ import annotations

import enum

__all__ = [
    "ArtifactError",
    "BackendError",
    "ConfigError",
    "EndpointFailedError",
    "EndpointNotFoundError",
    "ExitCode",
    "ImageNotFoundError",
    "SmlocalError",
    "WorkInterrupted",
]


class ExitCode(enum.IntEnum):
    """What every ``smlocal`` command exits with; the same kind of failure, the same code."""

    OK = 0
    """Done as asked."""
    FAILED = 1
    """It ran and failed: an endpoint Failed, a contract check failed, an AWS call or a
    promote/cleanup step failed, no endpoint by that name."""
    USAGE = 2
    """Nothing ran: a bad flag, name, spec or config file, a missing image or model, a port in
    use, no Docker engine. Fix the input or the machine and run it again."""
    REFUSED = 3
    """``promote`` refused to ship: no contract-test pass, or the quality gate missed."""
    INTERRUPTED = 130
    """Ctrl-C or SIGTERM stopped it before the work was done (128 + SIGINT, as shells do)."""


class SmlocalError(Exception):
    """Base of every error smlocal raises deliberately. ``exit_code`` is what the CLI returns."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(SmlocalError):
    """The user's input (flags, spec file, env) cannot be used as given."""

    exit_code = ExitCode.USAGE


class ArtifactError(SmlocalError):
    """The model artifact could not be staged."""

    exit_code = ExitCode.USAGE


class BackendError(SmlocalError):
    """The container engine is unreachable or refused an operation."""

    exit_code = ExitCode.USAGE


class ImageNotFoundError(BackendError):
    """The image does not exist in the local engine."""


class EndpointFailedError(SmlocalError):
    """An endpoint did not become InService. ``logs`` holds the container's last lines."""

    def __init__(self, message: str, *, logs: str = "", exit_status: int | None = None) -> None:
        super().__init__(message)
        self.logs = logs
        self.exit_status = exit_status


class EndpointNotFoundError(SmlocalError):
    """No running endpoint has that name."""


class WorkInterrupted(SmlocalError):
    """Ctrl-C stopped the work; the message says what was left in which state."""

    exit_code = ExitCode.INTERRUPTED
