"""The exception tree for everything smlocal raises on purpose.

Every error a user can cause or meet derives from :class:`SmlocalError`; the CLI turns it into
a one-line message and an exit code, so a traceback always means a bug in smlocal.

    SmlocalError
    ├── ConfigError            bad spec, flag, env var, instance type, endpoint name
    ├── ArtifactError          model source missing, unsafe or unreadable archive, S3 failure
    ├── BackendError           the container engine is missing or refused an operation
    │   └── ImageNotFoundError the image is not in the local engine
    ├── EndpointFailedError    an endpoint did not reach InService (carries reason and logs)
    └── EndpointNotFoundError  no running endpoint by that name
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "BackendError",
    "ConfigError",
    "EndpointFailedError",
    "EndpointNotFoundError",
    "ImageNotFoundError",
    "SmlocalError",
]


class SmlocalError(Exception):
    """Base of every error smlocal raises deliberately. ``exit_code`` is what the CLI returns."""

    exit_code: int = 1


class ConfigError(SmlocalError):
    """The user's input (flags, spec file, env) cannot be used as given."""

    exit_code = 2


class ArtifactError(SmlocalError):
    """The model artifact could not be staged."""


class BackendError(SmlocalError):
    """The container engine is unreachable or refused an operation."""


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
