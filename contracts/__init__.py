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
Submodules are imported lazily so ``import contracts.ledger`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contracts.ledger import PassRecord, find_pass, record_pass
    from contracts.model import CheckInfo, CheckResult, Outcome, Severity, Status, SuiteReport
    from contracts.report import write_json, write_junit
    from contracts.runner import CHECK_IDS, SuiteOptions, run_suite
    from contracts.specfile import ContractSpec, load_spec

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
    "CHECK_IDS": "contracts.runner",
    "SuiteOptions": "contracts.runner",
    "run_suite": "contracts.runner",
    "CheckInfo": "contracts.model",
    "CheckResult": "contracts.model",
    "Outcome": "contracts.model",
    "Severity": "contracts.model",
    "Status": "contracts.model",
    "SuiteReport": "contracts.model",
    "PassRecord": "contracts.ledger",
    "find_pass": "contracts.ledger",
    "record_pass": "contracts.ledger",
    "ContractSpec": "contracts.specfile",
    "load_spec": "contracts.specfile",
    "write_json": "contracts.report",
    "write_junit": "contracts.report",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'contracts' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
