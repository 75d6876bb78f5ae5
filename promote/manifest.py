"""The deployment manifest: every AWS resource a promote touched, written as it happens.

One JSON file per deployment (default ``$SMLOCAL_HOME/deployments/<deployment-id>.json`` when
SMLOCAL_HOME is set, else ``<project>/.smlocal/deployments/<deployment-id>.json``, beside the
code it deployed).
Each resource is appended the moment its create call returns, so a promote that dies half-way
leaves an accurate list for ``smlocal cleanup``. A resource is ``created`` (smlocal made it,
cleanup may delete it) or pre-existing (``created: false``, never touched by cleanup).

    {"version": 1, "deployment_id": "...", "endpoint_name": "...", "region": "...",
     "endpoint_url": null, "started_at": "...", "status": "in-progress|complete|failed",
     "skip_gate": false, "gate": {...}, "failure": {"step": "...", "error": "..."},
     "resources": [{"kind": "sagemaker-model", "id": "...", "arn": "...", "created": true,
                    "at": "...", "details": {...}, "deleted_at": null}]}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smlocal.emulator.errors import ConfigError

__all__ = ["CLEANUP_ORDER", "KINDS", "Manifest", "Resource", "default_manifest_path", "now"]

VERSION = 1
# Every kind promote records, in the order cleanup deletes them (dependents first).
CLEANUP_ORDER = (
    "scaling-policy",
    "scalable-target",
    "cloudwatch-alarm",
    "sns-topic",
    "sagemaker-endpoint",
    "sagemaker-endpoint-config",
    "sagemaker-model",
    "s3-object",
    "s3-bucket",
    "ecr-image",
    "ecr-repository",
    "iam-role",
)
KINDS = frozenset(CLEANUP_ORDER)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_manifest_path(project_root: Path, deployment_id: str) -> Path:
    """Where a deployment's manifest goes when no ``--manifest`` names one: below
    ``$SMLOCAL_HOME`` when it is set (the one home of everything smlocal keeps), else in the
    project's ``.smlocal/``."""
    home = os.environ.get("SMLOCAL_HOME")
    base = Path(home) if home else project_root / ".smlocal"
    return base / "deployments" / f"{deployment_id}.json"


@dataclass
class Resource:
    kind: str
    id: str
    arn: str | None
    created: bool
    at: str
    details: dict[str, Any] = field(default_factory=dict)
    deleted_at: str | None = None


@dataclass
class Manifest:
    path: Path
    deployment_id: str
    endpoint_name: str
    region: str
    endpoint_url: str | None = None
    started_at: str = field(default_factory=now)
    status: str = "in-progress"
    skip_gate: bool = False
    gate: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, str] | None = None
    resources: list[Resource] = field(default_factory=list)

    # -- writing ---------------------------------------------------------------------------

    def save(self) -> None:
        """Atomically replace the file, so a crash never leaves half a manifest."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": VERSION, **asdict(self)}
        data["path"] = str(self.path)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(data, indent=2) + "\n")
        temp.replace(self.path)

    def record(
        self,
        kind: str,
        resource_id: str,
        *,
        created: bool,
        arn: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Resource:
        """Add (or refresh) a resource and write the manifest at once."""
        if kind not in KINDS:
            raise ValueError(f"unknown resource kind {kind!r}")
        existing = self.find(kind, resource_id)
        if existing is not None:
            existing.arn = arn or existing.arn
            existing.details.update(details or {})
            existing.deleted_at = None
            self.save()
            return existing
        resource = Resource(kind, resource_id, arn, created, now(), dict(details or {}))
        self.resources.append(resource)
        self.save()
        return resource

    def forget(self, resource: Resource) -> None:
        """Drop a resource recorded ahead of a call that then made nothing."""
        self.resources.remove(resource)
        self.save()

    def mark_deleted(self, resource: Resource) -> None:
        resource.deleted_at = now()
        self.save()

    def finish(self, status: str, failure: dict[str, str] | None = None) -> None:
        self.status = status
        self.failure = failure
        self.save()

    # -- reading ---------------------------------------------------------------------------

    def find(self, kind: str, resource_id: str) -> Resource | None:
        return next((r for r in self.resources if r.kind == kind and r.id == resource_id), None)

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.kind == kind]

    def to_delete(self) -> list[Resource]:
        """Created and not yet deleted, in reverse dependency order."""
        rank = {kind: index for index, kind in enumerate(CLEANUP_ORDER)}
        live = [r for r in self.resources if r.created and r.deleted_at is None]
        return sorted(live, key=lambda r: rank[r.kind])

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no manifest at {path}") from None
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read manifest {path}: {error}") from None
        if data.get("version") != VERSION:
            raise ConfigError(f"{path}: unsupported manifest version {data.get('version')!r}")
        resources = [Resource(**r) for r in data.get("resources", [])]
        return cls(
            path=path,
            deployment_id=data["deployment_id"],
            endpoint_name=data["endpoint_name"],
            region=data["region"],
            endpoint_url=data.get("endpoint_url"),
            started_at=data.get("started_at", ""),
            status=data.get("status", "unknown"),
            skip_gate=bool(data.get("skip_gate", False)),
            gate=data.get("gate", {}),
            failure=data.get("failure"),
            resources=resources,
        )
