"""The contract gate, read through contracts.ledger's public calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from smlocal.contracts.ledger import record_pass
from smlocal.contracts.model import SuiteReport
from smlocal.contracts.specfile import ContractSpec, spec_digest
from smlocal.promote.errors import GateRefusedError
from smlocal.promote.gate import ContractsLedger, GateKey, GatePass, check_architecture, check_gate

IMAGE_ID = "sha256:" + "a" * 64
MODEL = "sha256:" + "b" * 64


def _record(spec: str) -> None:
    record_pass(
        SuiteReport(
            image="img:1",
            image_id=IMAGE_ID,
            model="model.tar.gz",
            model_digest=MODEL,
            spec_path=None,
            spec_digest=spec,
            instance_type="ml.m5.large",
        )
    )


def test_no_pass_is_refused_naming_the_command(smlocal_home: Path) -> None:
    with pytest.raises(GateRefusedError, match=r"smlocal contract-test img:1 --model m\.tar\.gz"):
        check_gate(GateKey(IMAGE_ID, MODEL), "img:1", "m.tar.gz")


def test_a_pass_for_this_image_and_model_opens_the_gate(smlocal_home: Path) -> None:
    _record(spec_digest(ContractSpec()))
    found = check_gate(GateKey(IMAGE_ID, MODEL), "img:1", "m.tar.gz")
    assert found.instance_type == "ml.m5.large"


def test_another_model_does_not_count(smlocal_home: Path) -> None:
    _record(spec_digest(ContractSpec()))
    assert ContractsLedger().find_pass(GateKey(IMAGE_ID, "sha256:" + "c" * 64)) is None


def test_a_required_contract_spec_must_match(smlocal_home: Path) -> None:
    _record(spec_digest(ContractSpec()))
    with pytest.raises(GateRefusedError, match="and that contract spec"):
        check_gate(GateKey(IMAGE_ID, MODEL, "sha256:" + "d" * 64), "img:1", "m")
    assert check_gate(GateKey(IMAGE_ID, MODEL, spec_digest(ContractSpec())), "img:1", "m")


def test_a_pass_on_one_cpu_architecture_does_not_open_the_other() -> None:
    x86_pass = GatePass(spec_digest="s", instance_type="ml.m5.large", recorded_at=0.0)
    check_architecture(x86_pass, "ml.c5.xlarge", "img:1", "m")  # same architecture: fine
    with pytest.raises(GateRefusedError, match=r"--instance-type ml\.c7g\.large"):
        check_architecture(x86_pass, "ml.c7g.large", "img:1", "m")
    graviton_pass = GatePass(spec_digest="s", instance_type="ml.c7g.large", recorded_at=0.0)
    with pytest.raises(GateRefusedError, match=r"ran as ml\.c7g\.large \(arm64\)"):
        check_architecture(graviton_pass, "ml.m5.large", "img:1", "m")
