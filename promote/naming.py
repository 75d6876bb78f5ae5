"""Names of what promote creates, derived from the deployment, so a re-run finds its own work."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

__all__ = ["bounded", "new_deployment_id", "short_hash"]

_UNSAFE = re.compile(r"[^a-zA-Z0-9-]+")


def new_deployment_id(endpoint: str, now: datetime | None = None) -> str:
    """``<endpoint>-<UTC yyyymmddHHMMSS>``: sortable, readable, valid as an ECR tag."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    return f"{endpoint[:48]}-{stamp}"


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def bounded(base: str, suffix: str, limit: int = 63) -> str:
    """``base-suffix`` cut to SageMaker's/IAM's name limit, keeping the (unique) suffix whole."""
    clean = _UNSAFE.sub("-", base).strip("-")
    room = limit - len(suffix) - 1
    return f"{clean[:room].rstrip('-')}-{suffix}"
