"""The pass ledger: which (image id, model digest, spec digest) passed ``smlocal contract-test``.

``smlocal promote`` refuses an image that has no pass here. A pass is recorded only for a
complete run (no ``--only``/``--skip``; a spec's own documented skips are part of its digest)
with no error-severity failure. Records live below ``$SMLOCAL_HOME/contracts/passes/``, one
JSON file per key, written atomically; a later pass for the same key replaces the earlier one.

Public API: :func:`record_pass`, :func:`find_pass`, :class:`PassRecord`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from smlocal.contracts.model import SuiteReport
from smlocal.emulator.state import StateDir

__all__ = ["PassRecord", "find_pass", "record_if_pass", "record_pass"]


@dataclass(frozen=True)
class PassRecord:
    image_id: str
    """``sha256:...`` image id from the local engine (``docker image inspect .Id``)."""
    model_digest: str
    """:attr:`emulator.artifacts.StagedModel.digest`, or ``"none"`` when run without a model."""
    spec_digest: str
    image: str
    instance_type: str
    recorded_at: float
    warnings: int
    wall_s: float


def _folder(state: StateDir | None) -> Path:
    return (state or StateDir()).root / "contracts" / "passes"


def _key(image_id: str, model_digest: str, spec_digest: str | None) -> str:
    return hashlib.sha256(f"{image_id}\n{model_digest}\n{spec_digest}".encode()).hexdigest()


def record_pass(report: SuiteReport, state: StateDir | None = None) -> PassRecord:
    """Write ``report`` as a pass; ValueError if it is not a complete, passing run."""
    if not report.passed or not report.complete:
        raise ValueError("only a complete run without error-severity failures is a pass")
    record = PassRecord(
        image_id=report.image_id,
        model_digest=report.model_digest,
        spec_digest=report.spec_digest,
        image=report.image,
        instance_type=report.instance_type,
        recorded_at=time.time(),
        warnings=report.counts()["warnings"],
        wall_s=round(report.wall_s, 3),
    )
    folder = (state or StateDir()).private_dir("contracts", "passes")  # owner-only records
    path = folder / f"{_key(record.image_id, record.model_digest, record.spec_digest)}.json"
    temp = path.with_suffix(f".{os.getpid()}.tmp")
    temp.write_text(json.dumps(asdict(record), indent=2))
    temp.replace(path)
    return record


def record_if_pass(report: SuiteReport, state: StateDir | None = None) -> PassRecord | None:
    """Record ``report`` when it is a pass (complete, no error-severity failure); else None.

    Only a complete run counts: a run narrowed with ``--only``/``--skip`` proves less than the
    whole contract, so the promote gate must not accept it.
    """
    if not report.passed or not report.complete:
        return None
    return record_pass(report, state)


def find_pass(
    image_id: str,
    model_digest: str,
    spec_digest: str | None = None,
    *,
    state: StateDir | None = None,
) -> PassRecord | None:
    """The newest pass for this image and model (and spec, unless ``spec_digest`` is None)."""
    folder = _folder(state)
    if spec_digest is not None:
        candidates = [folder / f"{_key(image_id, model_digest, spec_digest)}.json"]
    else:
        candidates = sorted(folder.glob("*.json")) if folder.is_dir() else []
    found: list[PassRecord] = []
    for path in candidates:
        try:
            record = PassRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if record.image_id == image_id and record.model_digest == model_digest:
            found.append(record)
    return max(found, key=lambda r: r.recorded_at, default=None)
