"""smlocal: SageMaker hosting on your own machine, for bring-your-own-container images.

The public API for scripting smlocal from Python (the ``smlocal`` command is a thin layer
over it). Everything below is imported on first use, so ``import smlocal`` stays light.

Endpoints (``smlocal.emulator``):

* :class:`EndpointSpec` / :class:`VariantSpec` and :func:`build_spec` — the one value that
  describes an endpoint (name, variants: image, model, env, instance type and count, weight);
  :func:`load_config` reads ``smlocal.toml`` / ``[tool.smlocal]`` with its profiles.
* :func:`serve_in_background` — serve a spec on Docker in a background thread of your
  program; yields once InService or Failed, stops everything when the ``with`` ends.
* :class:`DockerBackend` — the container engine behind them.

The hosting contract (``smlocal.contracts``): :func:`run_suite` with :class:`SuiteOptions`
gives a :class:`SuiteReport`; :func:`record_if_pass` records a passing run for the promote
gate; :func:`load_spec` reads a contract spec file.

Load tests (``smlocal.loadtests``): :func:`run_loadtest` with :class:`LoadTestOptions`;
:func:`advise` turns a MAX_RPS into autoscaling advice.

Monitoring (``smlocal.monitor``): :func:`run_baseline` writes a dataset's Model Monitor
``statistics.json`` / ``constraints.json``; :func:`run_monitor` with :class:`MonitorRun` and
:class:`CaptureWindow` checks a window of captured traffic against them.

Release (``smlocal.promote``): :class:`PromoteOptions` → :func:`build_request` →
:func:`prepare` / :func:`execute`; :class:`Manifest` and :func:`run_cleanup`.

Errors: everything raised on purpose derives from :class:`SmlocalError` (tree in
``smlocal.emulator.errors``); :class:`ExitCode` is the command line's exit code table.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smlocal.contracts.ledger import record_if_pass
    from smlocal.contracts.model import SuiteReport
    from smlocal.contracts.runner import SuiteOptions, run_suite
    from smlocal.contracts.specfile import load_spec
    from smlocal.emulator.background import serve_in_background
    from smlocal.emulator.config import load_config
    from smlocal.emulator.docker_backend import DockerBackend
    from smlocal.emulator.errors import (
        ArtifactError,
        BackendError,
        ConfigError,
        EndpointFailedError,
        EndpointNotFoundError,
        ExitCode,
        ImageNotFoundError,
        SmlocalError,
    )
    from smlocal.emulator.spec import EndpointSpec, VariantSpec, build_spec
    from smlocal.loadtests.advice import advise
    from smlocal.loadtests.session import LoadTestOptions, run_loadtest
    from smlocal.monitor.baseline import run_baseline
    from smlocal.monitor.capture import CaptureWindow
    from smlocal.monitor.errors import MonitorInputError
    from smlocal.monitor.run import MonitorRun, run_monitor
    from smlocal.promote.cleanup import run_cleanup
    from smlocal.promote.deploy import execute, prepare
    from smlocal.promote.errors import GateRefusedError, PromoteError, StepFailedError
    from smlocal.promote.manifest import Manifest
    from smlocal.promote.options import PromoteOptions, build_request

__all__ = [
    "ArtifactError",
    "BackendError",
    "CaptureWindow",
    "ConfigError",
    "DockerBackend",
    "EndpointFailedError",
    "EndpointNotFoundError",
    "EndpointSpec",
    "ExitCode",
    "GateRefusedError",
    "ImageNotFoundError",
    "LoadTestOptions",
    "Manifest",
    "MonitorInputError",
    "MonitorRun",
    "PromoteError",
    "PromoteOptions",
    "SmlocalError",
    "StepFailedError",
    "SuiteOptions",
    "SuiteReport",
    "VariantSpec",
    "advise",
    "build_request",
    "build_spec",
    "execute",
    "load_config",
    "load_spec",
    "prepare",
    "record_if_pass",
    "run_baseline",
    "run_cleanup",
    "run_loadtest",
    "run_monitor",
    "run_suite",
    "serve_in_background",
]

_HOME = {
    "record_if_pass": "smlocal.contracts.ledger",
    "SuiteReport": "smlocal.contracts.model",
    "SuiteOptions": "smlocal.contracts.runner",
    "run_suite": "smlocal.contracts.runner",
    "load_spec": "smlocal.contracts.specfile",
    "serve_in_background": "smlocal.emulator.background",
    "load_config": "smlocal.emulator.config",
    "DockerBackend": "smlocal.emulator.docker_backend",
    "EndpointSpec": "smlocal.emulator.spec",
    "VariantSpec": "smlocal.emulator.spec",
    "build_spec": "smlocal.emulator.spec",
    "advise": "smlocal.loadtests.advice",
    "LoadTestOptions": "smlocal.loadtests.session",
    "run_loadtest": "smlocal.loadtests.session",
    "run_baseline": "smlocal.monitor.baseline",
    "CaptureWindow": "smlocal.monitor.capture",
    "MonitorInputError": "smlocal.monitor.errors",
    "MonitorRun": "smlocal.monitor.run",
    "run_monitor": "smlocal.monitor.run",
    "run_cleanup": "smlocal.promote.cleanup",
    "execute": "smlocal.promote.deploy",
    "prepare": "smlocal.promote.deploy",
    "GateRefusedError": "smlocal.promote.errors",
    "PromoteError": "smlocal.promote.errors",
    "StepFailedError": "smlocal.promote.errors",
    "Manifest": "smlocal.promote.manifest",
    "PromoteOptions": "smlocal.promote.options",
    "build_request": "smlocal.promote.options",
    **dict.fromkeys(
        (
            "ArtifactError",
            "BackendError",
            "ConfigError",
            "EndpointFailedError",
            "EndpointNotFoundError",
            "ExitCode",
            "ImageNotFoundError",
            "SmlocalError",
        ),
        "smlocal.emulator.errors",
    ),
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'smlocal' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
