"""Bring the image up through the emulator and judge startup: healthy, read-only model, isolated.

The first attempt is the strict SageMaker one: ``IMAGE serve`` with the model read-only (and,
when the spec requires it, no network). When that container *exits* before it is healthy, the
runner tries again with exactly one condition relaxed — network, then a writable copy of the
model — so the report can name the rule broken ("healthy only with a writable /opt/ml/model")
instead of a generic startup failure, and the remaining checks can still run. A container that
merely never answers is not retried: that would only double the wait.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from smlocal.contracts.checks.startup import HEALTHY, NETWORK_ISOLATION, READ_ONLY_MODEL
from smlocal.contracts.cleanup import ContractDocker, RunContainers
from smlocal.contracts.model import CheckInfo, Outcome, Status
from smlocal.emulator.artifacts import StagedModel
from smlocal.emulator.backend import ISOLATED_NETWORK, ContainerRun, RunningContainer
from smlocal.emulator.background import BackgroundEndpoint, serve_in_background
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.errors import BackendError
from smlocal.emulator.server import ServeOptions
from smlocal.emulator.spec import EndpointSpec
from smlocal.emulator.state import StateDir

__all__ = ["ISOLATED_NETWORK", "Conditions", "Startup", "bring_up"]

LOG_LINES = 15
# The suite pings on its own schedule; the emulator's in-service monitor must not replace a
# container that a check is deliberately stressing or stopping.
_NO_MONITOR = 24 * 3600.0


@dataclass(frozen=True)
class Conditions:
    read_only_model: bool = True
    isolated: bool = False

    def describe(self) -> str:
        parts = ["/opt/ml/model " + ("read-only" if self.read_only_model else "WRITABLE")]
        parts.append("no network" if self.isolated else "with network")
        return ", ".join(parts)


class RecordingBackend(ContractDocker):
    """Docker, applying the attempt's conditions and remembering the container it started.

    With ``run``, every container carries the run's labels and is recorded in its ledger, and
    none is started once the run is closing (see :mod:`contracts.cleanup`)."""

    def __init__(
        self,
        conditions: Conditions,
        writable_model: Path | None,
        run: RunContainers | None = None,
    ) -> None:
        super().__init__()
        self.conditions = conditions
        self.writable_model = writable_model
        self.run = run
        self.container: RunningContainer | None = None
        self.started_at = 0.0

    def start(self, run: ContainerRun) -> RunningContainer:
        if not self.conditions.read_only_model and self.writable_model is not None:
            run = replace(run, model_dir=self.writable_model, model_read_only=False)
        if self.conditions.isolated:
            run = replace(run, network=ISOLATED_NETWORK)
        if self.run is None:
            container = super().start(run)
        else:
            run = replace(run, labels={**run.labels, **self.run.identity.labels()})
            with self.run.starting():
                container = super().start(run)
                if not self.run.started(container.id):
                    # The run closed while `docker run` was in flight: remove it at once.
                    self.stop(container.id, 0)
                    self.remove(container.id)
                    raise BackendError("contract-test is stopping: container removed")
        self.container = container
        self.started_at = time.monotonic()
        return container


@dataclass
class Attempt:
    conditions: Conditions
    backend: RecordingBackend
    handle: BackgroundEndpoint
    time_to_healthy_s: float | None

    @property
    def healthy(self) -> bool:
        return self.handle.status == "InService" and self.backend.container is not None

    @property
    def reason(self) -> str:
        return self.handle.sink.statuses[-1][2] if self.handle.sink.statuses else "unknown"

    @property
    def exited(self) -> bool:
        return "exited with code" in self.reason or "OOM" in self.reason

    def log_tail(self) -> list[str]:
        return [f"log: {line}" for _, line in self.handle.sink.logs[-LOG_LINES:]]


@dataclass
class Startup:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    attempt: Attempt | None = None
    """The healthy attempt the live checks run against (None: nothing became healthy)."""


def _attempt(
    stack: contextlib.ExitStack,
    spec: EndpointSpec,
    conditions: Conditions,
    staged: StagedModel | None,
    state: StateDir,
    *,
    run: RunContainers | None,
) -> Attempt:
    writable: Path | None = None
    if not conditions.read_only_model and staged is not None:
        # A copy, so a container that writes cannot change the cached, digest-named model.
        scratch = Path(tempfile.mkdtemp(prefix="smlocal-contract-"))
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        writable = scratch / "model"
        shutil.copytree(staged.path, writable)
    backend = RecordingBackend(conditions, writable, run)
    settings = MonitorSettings(ping_interval_s=_NO_MONITOR, host_cpus=backend.host_cpus())
    options = ServeOptions(port=0, settings=settings, state=state)
    handle = stack.enter_context(
        serve_in_background(spec, backend, options, wait_s=spec.startup_timeout_s + 60)
    )
    took = time.monotonic() - backend.started_at if handle.status == "InService" else None
    return Attempt(conditions, backend, handle, took)


def _failed(attempt: Attempt, summary: str) -> Outcome:
    return Outcome.failed(
        summary, [f"{attempt.conditions.describe()}: {attempt.reason}", *attempt.log_tail()]
    )


def bring_up(
    stack: contextlib.ExitStack,
    spec: EndpointSpec,
    staged: StagedModel | None,
    state: StateDir,
    *,
    isolation_required: bool,
    run: RunContainers | None = None,
) -> Startup:
    """Start the image (retrying relaxed only after an exit); keep the healthy one in ``stack``."""
    strict = Conditions(read_only_model=True, isolated=isolation_required)
    relaxations: list[tuple[CheckInfo, Conditions]] = []
    if isolation_required:
        relaxations.append((NETWORK_ISOLATION, replace(strict, isolated=False)))
    if staged is not None:
        relaxations.append((READ_ONLY_MODEL, replace(strict, read_only_model=False)))
    startup = Startup()
    with contextlib.ExitStack() as first_stack:
        first = _attempt(first_stack, spec, strict, staged, state, run=run)
        if first.healthy:
            stack.enter_context(first_stack.pop_all())
            startup.attempt = first
            startup.outcomes = _all_passed(first, isolation_required, staged)
            return startup
    if first.exited:
        for check, relaxed in relaxations:
            with contextlib.ExitStack() as retry_stack:
                retry = _attempt(retry_stack, spec, relaxed, staged, state, run=run)
                if not retry.healthy:
                    continue
                stack.enter_context(retry_stack.pop_all())
            startup.attempt = retry
            startup.outcomes = _all_passed(retry, isolation_required, staged)
            startup.outcomes[check.id] = _failed(
                first, f"exits under {strict.describe()}; healthy only with {relaxed.describe()}"
            )
            startup.outcomes[HEALTHY.id] = Outcome(
                Status.SKIPPED,
                f"judged by {check.id}: healthy in {retry.time_to_healthy_s or 0:.1f} s only "
                f"with {relaxed.describe()}",
                measurements={"time_to_healthy_s": _round(retry.time_to_healthy_s)},
            )
            return startup
    never = "not judged: the container never became healthy (see startup.healthy)"
    startup.outcomes = {
        HEALTHY.id: _failed(first, "not healthy within the startup window"),
        READ_ONLY_MODEL.id: Outcome.not_applicable(never),
        NETWORK_ISOLATION.id: Outcome.not_applicable(never),
    }
    return startup


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _all_passed(
    attempt: Attempt, isolation_required: bool, staged: StagedModel | None
) -> dict[str, Outcome]:
    took = _round(attempt.time_to_healthy_s)
    outcomes = {
        HEALTHY.id: Outcome.passed(f"healthy {took} s after start", time_to_healthy_s=took),
        READ_ONLY_MODEL.id: Outcome.passed("served with /opt/ml/model mounted read-only")
        if staged is not None
        else Outcome.not_applicable("no --model given, so nothing is mounted at /opt/ml/model"),
        NETWORK_ISOLATION.id: Outcome.passed("served on an internal network with no way out")
        if isolation_required
        else Outcome.not_applicable(
            "the spec does not require network isolation (network_isolation: false)"
        ),
    }
    return outcomes
