"""The SageMaker hosting contract as executable checks (``smlocal contract-test``).

Public API:

* :func:`run_suite` with :class:`SuiteOptions` — run the checks against an image, get a
  :class:`SuiteReport` (results, measurements, ``passed``);
* :mod:`contracts.ledger` — :func:`record_pass` / :func:`find_pass`, the gate that
  ``smlocal promote`` reads;
* :func:`load_spec` / :class:`ContractSpec` — per-model spec files (YAML or TOML; format in
  :mod:`contracts.specfile`, JSON Schema in ``contracts/spec.schema.json``);
* :func:`write_json` / :func:`write_junit` — reports for CI.

Errors are the emulator's: a bad flag or spec is :class:`emulator.errors.ConfigError`.
Submodules are imported lazily so ``import smlocal.contracts.ledger`` stays light.
"""

from __future__ import annotations

if __name__ != "smlocal.contracts":  # reached as the checkout's bare top-level folder
    raise ImportError(
        f"import smlocal.contracts, not {__name__}: contracts/ is installed as smlocal.contracts"
    )

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smlocal.contracts.ledger import PassRecord, find_pass, record_pass
    from smlocal.contracts.model import (
        CheckInfo,
        CheckResult,
        Outcome,
        Severity,
        Status,
        SuiteReport,
    )
    from smlocal.contracts.report import write_json, write_junit
    from smlocal.contracts.runner import CHECK_IDS, SuiteOptions, run_suite
    from smlocal.contracts.specfile import ContractSpec, load_spec

__all__ = [
    "CHECK_IDS",
    "CheckInfo",
    "CheckResult",
    "ContractSpec",
    "Outcome",
    "PassRecord",
    "Severity",
    "Status",
    "SuiteOptions",
    "SuiteReport",
    "find_pass",
    "load_spec",
    "record_pass",
    "run_suite",
    "write_json",
    "write_junit",
]

_HOME = {
    "CHECK_IDS": "smlocal.contracts.runner",
    "SuiteOptions": "smlocal.contracts.runner",
    "run_suite": "smlocal.contracts.runner",
    "CheckInfo": "smlocal.contracts.model",
    "CheckResult": "smlocal.contracts.model",
    "Outcome": "smlocal.contracts.model",
    "Severity": "smlocal.contracts.model",
    "Status": "smlocal.contracts.model",
    "SuiteReport": "smlocal.contracts.model",
    "PassRecord": "smlocal.contracts.ledger",
    "find_pass": "smlocal.contracts.ledger",
    "record_pass": "smlocal.contracts.ledger",
    "ContractSpec": "smlocal.contracts.specfile",
    "load_spec": "smlocal.contracts.specfile",
    "write_json": "smlocal.contracts.report",
    "write_junit": "smlocal.contracts.report",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'contracts' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
