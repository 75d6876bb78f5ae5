"""The contract gate: promote ships only an image that passed ``smlocal contract-test``.

The ledger belongs to ``contracts`` (``contracts.ledger.find_pass``); a pass is keyed by the
image id (``docker image inspect .Id``), the model digest
(:attr:`emulator.artifacts.StagedModel.digest`) and the digest of the contract spec file the
run used. ``contracts`` is imported lazily (``importlib``), so promote's import stays light
and the dependency points one way only (promote → contracts).

Without ``--contract-spec`` any passing run for this image and model counts; with it, only a
run against that very spec file does.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from promote.errors import GateRefusedError, PromoteError

__all__ = ["ContractLedger", "GateKey", "GatePass", "check_gate", "contract_spec_digest"]


@dataclass(frozen=True)
class GateKey:
    image_id: str
    model_digest: str
    spec_digest: str | None = None
    """Digest of the contract spec file; None accepts a pass against any spec."""


@dataclass(frozen=True)
class GatePass:
    """What the gate keeps of a pass (for the manifest)."""

    spec_digest: str
    instance_type: str
    recorded_at: float


class ContractLedger(Protocol):
    """What the gate needs from a ledger of contract-test passes."""

    def find_pass(self, key: GateKey) -> GatePass | None: ...


def _contracts(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise PromoteError(
            f"the contract ledger ({module}) is not installed with smlocal; "
            "reinstall smlocal or pass --skip-gate"
        ) from error


class ContractsLedger:
    """``contracts.ledger`` (records below ``$SMLOCAL_HOME/contracts/passes/``)."""

    def find_pass(self, key: GateKey) -> GatePass | None:
        ledger = _contracts("contracts.ledger")
        record = ledger.find_pass(key.image_id, key.model_digest, key.spec_digest)
        if record is None:
            return None
        return GatePass(
            spec_digest=str(record.spec_digest),
            instance_type=str(record.instance_type),
            recorded_at=float(record.recorded_at),
        )


def contract_spec_digest(path: Path) -> str:
    """The digest ``smlocal contract-test --spec PATH`` records, computed the same way."""
    specfile = _contracts("contracts.specfile")
    return str(specfile.spec_digest(specfile.load_spec(path)))


def check_gate(
    key: GateKey, image: str, model: str, ledger: ContractLedger | None = None
) -> GatePass:
    """The pass for ``key``, or :class:`GateRefusedError` saying which command to run."""
    record = (ledger or ContractsLedger()).find_pass(key)
    if record is None:
        against = " and that contract spec" if key.spec_digest else ""
        raise GateRefusedError(
            f"refusing to promote {image}: no passing contract-test record for image "
            f"{key.image_id[:19]} with model {key.model_digest[:19]}{against}. Run "
            f"`smlocal contract-test {image} --model {model}` first "
            "(or pass --skip-gate, which is recorded in the manifest)"
        )
    return record
