"""Run the contract suite: image checks, bring-up, live checks, lifecycle checks, then stop.

:func:`run_suite` is the whole of ``smlocal contract-test`` minus printing: it validates the
options (a :class:`~emulator.errors.ConfigError` names what is wrong), stages the model the
way ``smlocal serve`` does, runs every selected check in a fixed order, stops everything it
started, and returns a :class:`~contracts.model.SuiteReport`. Progress goes to an optional
:class:`Progress` listener. Recording a pass in the ledger is the caller's decision.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from smlocal.contracts.bringup import ISOLATED_NETWORK, RecordingBackend, Startup, bring_up
from smlocal.contracts.checks import (
    ALL_CHECKS,
    IMAGE_CHECKS,
    LIFECYCLE_CHECKS,
    LIVE_CHECKS,
    LiveCheck,
)
from smlocal.contracts.checks.startup import BIND_TO_PORT, STARTUP_CHECKS, check_bind_to_port
from smlocal.contracts.cleanup import (
    ContractDocker,
    RunContainers,
    RunIdentity,
    SuiteInterrupted,
    deferred_signals,
    sweep_stale,
)
from smlocal.contracts.context import LiveContext, learn, live_address
from smlocal.contracts.image_facts import collect_image_facts
from smlocal.contracts.model import CheckInfo, CheckResult, Outcome, Status, SuiteReport
from smlocal.contracts.specfile import ContractSpec, load_spec, spec_digest
from smlocal.emulator.artifacts import StagedModel, stage_model
from smlocal.emulator.backend import LABEL_SESSION, ContainerRun
from smlocal.emulator.errors import ConfigError
from smlocal.emulator.spec import DEFAULT_INSTANCE_TYPE, EndpointSpec, build_spec
from smlocal.emulator.state import StateDir

__all__ = ["CHECK_IDS", "NO_MODEL_DIGEST", "Progress", "SuiteOptions", "run_suite"]

CHECK_IDS = tuple(check.id for check in ALL_CHECKS)
NO_MODEL_DIGEST = "none"
SIGTERM_GRACE_S = 30.0


class Progress(Protocol):
    def started(self, check: CheckInfo) -> None: ...

    def finished(self, result: CheckResult) -> None: ...


@dataclass(frozen=True)
class SuiteOptions:
    image: str
    model: str | None = None
    spec_path: Path | None = None
    instance_type: str | None = None
    only: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    stop_grace_s: float = SIGTERM_GRACE_S
    """SageMaker's 30 s. Tests of images that ignore SIGTERM lower it to save time."""
    state: StateDir | None = None


def _validate_ids(flag: str, ids: Iterable[str]) -> None:
    unknown = sorted(set(ids) - set(CHECK_IDS))
    if unknown:
        raise ConfigError(
            f"{flag}: unknown check id(s) {', '.join(unknown)}; known: {', '.join(CHECK_IDS)}"
        )


class _Suite:
    """One run: decides, per check, run / skip / blocked, and collects the results."""

    def __init__(
        self, options: SuiteOptions, spec: ContractSpec | None, progress: Progress | None
    ) -> None:
        self.options = options
        self.spec = spec
        self.progress = progress
        self.results: list[CheckResult] = []

    def excluded(self, check: CheckInfo) -> str | None:
        if self.options.only and check.id not in self.options.only:
            return "not selected by --only"
        if check.id in self.options.skip:
            return "skipped by --skip"
        reason = self.spec.skip_reason(check.id) if self.spec is not None else None
        return f"skipped by the spec: {reason}" if reason else None

    def blocked(self, check: CheckInfo) -> str | None:
        for need in check.needs:
            result = next((r for r in self.results if r.check.id == need), None)
            if result is not None and result.status == Status.FAILED:
                return f"blocked: {need} failed"
        return None

    def record(self, check: CheckInfo, outcome: Outcome, duration_s: float = 0.0) -> None:
        result = CheckResult(check, outcome, duration_s)
        self.results.append(result)
        if self.progress is not None:
            self.progress.finished(result)

    def run(self, check: CheckInfo, judge: Callable[[], Outcome]) -> None:
        reason = self.excluded(check) or self.blocked(check)
        if reason is not None:
            self.record(check, Outcome(Status.SKIPPED, reason))
            return
        if self.progress is not None:
            self.progress.started(check)
        started = time.perf_counter()
        outcome = judge()
        self.record(check, outcome, time.perf_counter() - started)

    def skip_all(self, checks: Iterable[CheckInfo], reason: str) -> None:
        for check in checks:
            self.record(check, Outcome(Status.SKIPPED, self.excluded(check) or reason))

    def wants_any(self, checks: Iterable[CheckInfo]) -> bool:
        return any(self.excluded(check) is None for check in checks)


def _endpoint_spec(options: SuiteOptions, spec: ContractSpec | None) -> EndpointSpec:
    instance_type = options.instance_type or (spec.instance_type if spec else None)
    return build_spec(
        name=f"contract-{uuid.uuid4().hex[:8]}",
        variants=[
            {
                "image": options.image,
                "model": options.model,
                "env": dict(spec.env) if spec else {},
                "instance_type": instance_type or DEFAULT_INSTANCE_TYPE,
            }
        ],
        startup_timeout_s=spec.startup_timeout_s if spec else 120,
    )


def run_suite(options: SuiteOptions, progress: Progress | None = None) -> SuiteReport:
    """Run every selected check against ``options.image``; see the module docstring.

    Every container the run starts carries its labels (:mod:`contracts.cleanup`) and is
    removed before this returns or raises; Ctrl-C (or SIGTERM turned into KeyboardInterrupt
    by the caller) becomes :class:`~contracts.cleanup.SuiteInterrupted`, raised once that is
    done and saying what, if anything, could not be removed. A run first sweeps containers
    of earlier runs whose process is gone.
    """
    _validate_ids("--only", options.only)
    _validate_ids("--skip", options.skip)
    spec = load_spec(options.spec_path) if options.spec_path is not None else None
    if spec is not None:
        _validate_ids(f"spec {options.spec_path}: skip", (s.id for s in spec.skip))
    endpoint = _endpoint_spec(options, spec)
    backend = ContractDocker()
    containers = RunContainers(RunIdentity.current(), backend)
    try:
        swept = sweep_stale(backend, containers.identity)
        report = _run(
            options, spec, endpoint, backend=backend, containers=containers, progress=progress
        )
        report.swept = tuple(swept)
        return report
    except KeyboardInterrupt:
        with deferred_signals():
            result = containers.close()
        raise SuiteInterrupted(containers.phase, result) from None
    finally:
        if not containers.closed:
            with deferred_signals():
                containers.close()


def _run(
    options: SuiteOptions,
    spec: ContractSpec | None,
    endpoint: EndpointSpec,
    *,
    backend: ContractDocker,
    containers: RunContainers,
    progress: Progress | None,
) -> SuiteReport:
    state = options.state or StateDir()
    started_at, clock = time.time(), time.perf_counter()
    variant = endpoint.variants[0]
    facts = collect_image_facts(backend, options.image, variant.instance)
    staged: StagedModel | None = None
    if options.model is not None:
        staged = stage_model(options.model, state.cache)
    report = SuiteReport(
        image=options.image,
        image_id=str(facts.attrs.get("Id", "")),
        model=options.model,
        model_digest=staged.digest if staged else NO_MODEL_DIGEST,
        spec_path=str(options.spec_path) if options.spec_path else None,
        spec_digest=spec_digest(spec or ContractSpec()),
        instance_type=variant.instance_type,
        started_at=started_at,
        complete=not options.only and not options.skip,
    )
    suite = _Suite(options, spec, progress)
    containers.phase = "image checks"
    for info, judge in IMAGE_CHECKS:
        suite.run(info, lambda judge=judge: judge(facts))  # type: ignore[misc]
    later = [BIND_TO_PORT, *(c.info for c in (*LIVE_CHECKS, *LIFECYCLE_CHECKS))]
    if not suite.wants_any([*STARTUP_CHECKS, *later]):
        suite.skip_all([*STARTUP_CHECKS, *later], "not selected")
    else:
        labels = facts.config.get("Labels") or {}
        _live_phase(
            suite,
            options=options,
            endpoint=endpoint,
            staged=staged,
            state=state,
            spec=spec,
            labels=labels,
            containers=containers,
        )
    report.results = suite.results
    report.wall_s = time.perf_counter() - clock
    return report


def _live_phase(
    suite: _Suite,
    *,
    options: SuiteOptions,
    endpoint: EndpointSpec,
    staged: StagedModel | None,
    state: StateDir,
    spec: ContractSpec | None,
    labels: dict[str, str],
    containers: RunContainers,
) -> None:
    live_checks: tuple[LiveCheck, ...] = (*LIVE_CHECKS, *LIFECYCLE_CHECKS)
    gate = next(c for c in STARTUP_CHECKS if c.id == "startup.healthy")
    blocked = suite.blocked(gate)
    if blocked is not None:
        suite.skip_all(STARTUP_CHECKS, blocked)
        suite.skip_all([BIND_TO_PORT, *(c.info for c in live_checks)], blocked)
        return
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        containers.phase = "bring-up"
        startup = bring_up(
            stack,
            endpoint,
            staged,
            state,
            isolation_required=bool(spec and spec.network_isolation),
            run=containers,
        )
        containers.phase = "live checks"
        took = time.perf_counter() - started
        for check in STARTUP_CHECKS:
            reason = suite.excluded(check)
            outcome = startup.outcomes[check.id]
            suite.record(check, Outcome(Status.SKIPPED, reason) if reason else outcome, took)
            took = 0.0  # the bring-up time is booked once
        attempt = startup.attempt
        if attempt is None or attempt.backend.container is None:
            suite.skip_all(
                [BIND_TO_PORT, *(c.info for c in live_checks)],
                "blocked: the container never became healthy",
            )
            return
        suite.run(
            BIND_TO_PORT, lambda: _bind_to_port(endpoint, staged, startup, labels, containers)
        )
        address, through_proxy = live_address(attempt.backend.container)
        context = LiveContext(
            address=address,
            through_proxy=through_proxy,
            container_id=attempt.backend.container.id,
            backend=attempt.backend,
            instance=endpoint.variants[0].instance,
            spec=spec,
            stop_grace_s=options.stop_grace_s,
            read_only_model=attempt.conditions.read_only_model,
            listen_backlog=lambda: attempt.backend.listen_backlogs(
                attempt.backend.container.id if attempt.backend.container else "", address[1]
            ),
        )
        if suite.wants_any(c.info for c in LIVE_CHECKS):
            learn(context)
        for live in live_checks:
            suite.run(live.info, lambda live=live: live.run(context))  # type: ignore[misc]


def _bind_to_port(
    endpoint: EndpointSpec,
    staged: StagedModel | None,
    startup: Startup,
    labels: dict[str, str],
    containers: RunContainers,
) -> Outcome:
    """A second container, like the healthy one (same conditions), told to use another port."""
    assert startup.attempt is not None
    conditions = startup.attempt.conditions
    backend = RecordingBackend(conditions, startup.attempt.backend.writable_model, containers)
    variant = endpoint.variants[0]
    run = ContainerRun(
        image=variant.image,
        name=f"smlocal-contract-{uuid.uuid4().hex[:8]}",
        model_dir=staged.path if staged else None,
        env=dict(variant.env),
        cpus=float(min(variant.instance.vcpus, backend.host_cpus())),
        memory_bytes=variant.instance.memory_bytes,
        labels={LABEL_SESSION: "contract"},
        network=ISOLATED_NETWORK if conditions.isolated else None,
    )
    return check_bind_to_port(labels, backend, run, timeout_s=endpoint.startup_timeout_s)
