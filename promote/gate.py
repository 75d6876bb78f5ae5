"""The contract gate: promote ships only an image that passed ``smlocal contract-test``.

The ledger belongs to ``contracts`` (``contracts.ledger.find_pass``); a pass is keyed by the
image id (``docker image inspect .Id``), the model digest
(:attr:`emulator.artifacts.StagedModel.digest`) and the digest of the contract spec file the
run used. ``smlocal.contracts`` is imported inside the functions that need it, so promote's
import stays light; the dependency points one way only (promote → contracts).

Without ``--contract-spec`` any passing run for this image and model counts; with it, only a
run against that very spec file does. A pass earned on one CPU architecture does not open the
gate for an instance type of the other: the image's platform was judged against the type the
test ran as (Graviton types run linux/arm64, the rest linux/amd64).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from smlocal.emulator.errors import ConfigError
from smlocal.emulator.instance_types import lookup_instance_type
from smlocal.promote.errors import GateRefusedError

__all__ = [
    "ContractLedger",
    "GateKey",
    "GatePass",
    "check_architecture",
    "check_gate",
    "contract_spec_digest",
]


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


class ContractsLedger:
    """``contracts.ledger`` (records below ``$SMLOCAL_HOME/contracts/passes/``)."""

    def find_pass(self, key: GateKey) -> GatePass | None:
        from smlocal.contracts import ledger

        record = ledger.find_pass(key.image_id, key.model_digest, key.spec_digest)
        if record is None:
            return None
        return GatePass(
            spec_digest=record.spec_digest,
            instance_type=record.instance_type,
            recorded_at=record.recorded_at,
        )


def contract_spec_digest(path: Path) -> str:
    """The digest ``smlocal contract-test --spec PATH`` records, computed the same way."""
    from smlocal.contracts import specfile

    return specfile.spec_digest(specfile.load_spec(path))


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


def _arch(instance_type: str) -> str | None:
    try:
        return lookup_instance_type(instance_type).arch
    except ConfigError:
        return None  # a type smlocal does not know: no architecture to compare


def check_architecture(record: GatePass, instance_type: str, image: str, model: str) -> None:
    """Refuse when the pass was earned on an instance type of another CPU architecture."""
    tested, target = _arch(record.instance_type), _arch(instance_type)
    if tested is None or target is None or tested == target:
        return
    raise GateRefusedError(
        f"refusing to promote {image} to {instance_type} ({target}): its contract-test pass "
        f"ran as {record.instance_type} ({tested}), which judged the image's platform for "
        f"{tested}. Run `smlocal contract-test {image} --model {model} --instance-type "
        f"{instance_type}` first"
    )
