"""Value objects of the contract suite: what a check is, what it found, what a run produced.

A :class:`CheckInfo` is a check's stable identity (id, title, severity, the AWS rule it
enforces). Running it yields an :class:`Outcome` (status, a one-line summary, evidence lines,
measurements); the runner wraps that into a :class:`CheckResult`, and a whole run into a
:class:`SuiteReport`. A run passes when no check at severity ``error`` failed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckInfo", "CheckResult", "Outcome", "Severity", "Status", "SuiteReport"]


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    """The check cannot judge this image (no examples, rule not required); says why."""
    SKIPPED = "skipped"
    """Not run: excluded (--only/--skip/spec) or blocked by a failed prerequisite."""


@dataclass(frozen=True)
class CheckInfo:
    id: str
    title: str
    severity: Severity
    rule: str
    """The AWS hosting rule the check enforces, in a sentence."""
    needs: tuple[str, ...] = ()
    """Checks whose failure makes this one meaningless (it is then skipped, not failed)."""

    @property
    def category(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass(frozen=True)
class Outcome:
    status: Status
    summary: str
    evidence: tuple[str, ...] = ()
    measurements: dict[str, Any] = field(default_factory=dict)
    severity: Severity | None = None
    """Overrides the check's severity for this outcome (e.g. arm64 is only a warning)."""

    @classmethod
    def passed(cls, summary: str, **measurements: Any) -> Outcome:
        return cls(Status.PASSED, summary, measurements=measurements)

    @classmethod
    def failed(cls, summary: str, evidence: list[str] | tuple[str, ...], **m: Any) -> Outcome:
        return cls(Status.FAILED, summary, tuple(evidence), measurements=m)

    @classmethod
    def not_applicable(cls, why: str, **measurements: Any) -> Outcome:
        return cls(Status.NOT_APPLICABLE, why, measurements=measurements)


@dataclass(frozen=True)
class CheckResult:
    check: CheckInfo
    outcome: Outcome
    duration_s: float

    @property
    def status(self) -> Status:
        return self.outcome.status

    @property
    def severity(self) -> Severity:
        return self.outcome.severity or self.check.severity

    @property
    def is_error(self) -> bool:
        """A failure that fails the run."""
        return self.status == Status.FAILED and self.severity == Severity.ERROR

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.check.id,
            "title": self.check.title,
            "severity": str(self.severity),
            "rule": self.check.rule,
            "status": str(self.status),
            "summary": self.outcome.summary,
            "evidence": list(self.outcome.evidence),
            "measurements": self.outcome.measurements,
            "duration_s": round(self.duration_s, 4),
        }


@dataclass
class SuiteReport:
    image: str
    image_id: str
    model: str | None
    model_digest: str
    spec_path: str | None
    spec_digest: str
    instance_type: str
    results: list[CheckResult] = field(default_factory=list)
    wall_s: float = 0.0
    started_at: float = 0.0
    complete: bool = True
    """False when --only/--skip left checks out: such a run never counts as a pass."""
    swept: tuple[str, ...] = ()
    """Containers of earlier, dead contract-test runs this run removed before it started."""

    @property
    def passed(self) -> bool:
        return not any(r.is_error for r in self.results)

    def result(self, check_id: str) -> CheckResult | None:
        return next((r for r in self.results if r.check.id == check_id), None)

    def counts(self) -> dict[str, int]:
        counts = {str(s): 0 for s in Status}
        for r in self.results:
            counts[str(r.status)] += 1
        counts["errors"] = sum(r.is_error for r in self.results)
        counts["warnings"] = sum(
            r.status == Status.FAILED and r.severity == Severity.WARNING for r in self.results
        )
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "image_id": self.image_id,
            "model": self.model,
            "model_digest": self.model_digest,
            "spec": self.spec_path,
            "spec_digest": self.spec_digest,
            "instance_type": self.instance_type,
            "passed": self.passed,
            "complete": self.complete,
            "started_at": self.started_at,
            "wall_s": round(self.wall_s, 3),
            "counts": self.counts(),
            "checks": [r.to_json() for r in self.results],
        }
