"""``smlocal contract-test IMAGE --multi-model --models DIR_OR_S3_PREFIX``: the /models API suite.

:func:`run_multi_model_suite` finds the model artifacts (every ``*.tar.gz`` below a local
directory, or below an ``s3://bucket/prefix/`` through boto3), stages each the way the service
does (bounded, safe extraction into the cache) and installs it read-only as
``<models dir>/<model_name>/model``; starts IMAGE once as a multi-model endpoint's container
(``serve``, ``SAGEMAKER_MULTI_MODEL=true``, the models directory read-only at
``/opt/ml/models``, the instance type's limits, the run's labels); waits for ``/ping``; runs
:data:`~smlocal.contracts.checks.multi_model.MULTI_MODEL_CHECKS` in order (a check whose
prerequisite failed is skipped) and removes every container it started, on Ctrl-C too. The
report is a :class:`~smlocal.contracts.model.SuiteReport` like the hosting suite's.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smlocal.contracts.bringup import Conditions, RecordingBackend
from smlocal.contracts.checks.multi_model import (
    LABEL,
    MULTI_MODEL_CHECKS,
    MultiModelContext,
    check_label,
)
from smlocal.contracts.cleanup import (
    ContractDocker,
    RunContainers,
    RunIdentity,
    SuiteInterrupted,
    deferred_signals,
    sweep_stale,
)
from smlocal.contracts.context import live_address
from smlocal.contracts.model import CheckInfo, CheckResult, Outcome, Status, SuiteReport
from smlocal.contracts.runner import Progress
from smlocal.contracts.wire import call
from smlocal.emulator.artifacts import stage_model
from smlocal.emulator.backend import LABEL_SESSION, ContainerRun
from smlocal.emulator.errors import ArtifactError, ConfigError
from smlocal.emulator.instance_types import InstanceType, lookup_instance_type
from smlocal.emulator.multi_model_cache import install_tree
from smlocal.emulator.multi_model_config import MULTI_MODEL_ENV, model_name_for
from smlocal.emulator.spec import DEFAULT_INSTANCE_TYPE
from smlocal.emulator.state import StateDir

__all__ = [
    "MULTI_MODEL_CHECK_IDS",
    "MultiModelOptions",
    "find_artifacts",
    "run_multi_model_suite",
]

MULTI_MODEL_CHECK_IDS = (LABEL.id, *(info.id for info, _ in MULTI_MODEL_CHECKS))
STARTUP_TIMEOUT_S = 120.0
_SPEC = "multi-model"


@dataclass(frozen=True)
class MultiModelOptions:
    image: str
    models: str
    """A local directory or an s3://bucket/prefix/ holding the models' ``*.tar.gz``."""
    instance_type: str | None = None
    only: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    startup_timeout_s: float = STARTUP_TIMEOUT_S
    state: StateDir | None = None


def find_artifacts(models: str) -> dict[str, str]:
    """TargetModel (path relative to ``models``) -> artifact source, for every ``*.tar.gz``."""
    if models.startswith("s3://"):
        found = _s3_artifacts(models)
    else:
        root = Path(models).expanduser()
        if not root.is_dir():
            raise ConfigError(f"--models {models}: not a directory (or an s3:// prefix)")
        found = {
            path.relative_to(root).as_posix(): str(path) for path in sorted(root.rglob("*.tar.gz"))
        }
    if not found:
        raise ConfigError(f"--models {models}: no *.tar.gz model artifact there")
    return found


def _s3_artifacts(prefix: str) -> dict[str, str]:
    import boto3

    bucket, _, key = prefix.removeprefix("s3://").partition("/")
    key = key if not key or key.endswith("/") else key + "/"
    try:
        pages = boto3.session.Session().client("s3").get_paginator("list_objects_v2")
        keys = [
            item["Key"]
            for page in pages.paginate(Bucket=bucket, Prefix=key)
            for item in page.get("Contents", [])
        ]
    except Exception as error:  # botocore's errors: a clear usage error, not a traceback
        raise ArtifactError(f"--models {prefix}: cannot list it: {error}") from None
    return {
        k.removeprefix(key): f"s3://{bucket}/{k}" for k in sorted(keys) if k.endswith(".tar.gz")
    }


def _validate_ids(flag: str, ids: frozenset[str]) -> None:
    unknown = sorted(ids - set(MULTI_MODEL_CHECK_IDS))
    if unknown:
        raise ConfigError(
            f"{flag}: unknown check id(s) {', '.join(unknown)}; with --multi-model: "
            f"{', '.join(MULTI_MODEL_CHECK_IDS)}"
        )


class _Results:
    def __init__(self, options: MultiModelOptions, progress: Progress | None) -> None:
        self.options = options
        self.progress = progress
        self.report_results: list[tuple[CheckInfo, Outcome, float]] = []

    def status(self, check_id: str) -> Status | None:
        return next((o.status for i, o, _ in self.report_results if i.id == check_id), None)

    def run(self, info: CheckInfo, judge: Callable[[], Outcome]) -> None:
        reason = None
        if self.options.only and info.id not in self.options.only:
            reason = "not selected by --only"
        elif info.id in self.options.skip:
            reason = "skipped by --skip"
        else:
            failed = [n for n in info.needs if self.status(n) == Status.FAILED]
            reason = f"blocked: {failed[0]} failed" if failed else None
        if reason is not None:
            self.record(info, Outcome(Status.SKIPPED, reason), 0.0)
            return
        if self.progress is not None:
            self.progress.started(info)
        started = time.perf_counter()
        outcome = judge()
        self.record(info, outcome, time.perf_counter() - started)

    def record(self, info: CheckInfo, outcome: Outcome, took: float) -> None:
        self.report_results.append((info, outcome, took))
        if self.progress is not None:
            self.progress.finished(CheckResult(info, outcome, took))


def run_multi_model_suite(
    options: MultiModelOptions, progress: Progress | None = None
) -> SuiteReport:
    """Run the multi-model checks against ``options.image``; see the module docstring."""
    _validate_ids("--only", options.only)
    _validate_ids("--skip", options.skip)
    instance = lookup_instance_type(options.instance_type or DEFAULT_INSTANCE_TYPE)
    state = options.state or StateDir()
    artifacts = find_artifacts(options.models)
    backend = ContractDocker()
    labels = (backend.image_info(options.image).get("Config") or {}).get("Labels") or {}
    containers = RunContainers(RunIdentity.current(), backend)
    started_at, clock = time.time(), time.perf_counter()
    staged = {target: stage_model(source, state.cache) for target, source in artifacts.items()}
    digest = hashlib.sha256(
        "".join(f"{t}\0{s.digest}\0" for t, s in sorted(staged.items())).encode()
    ).hexdigest()
    results = _Results(options, progress)
    report = SuiteReport(
        image=options.image,
        image_id=str(backend.image_info(options.image).get("Id", "")),
        model=options.models,
        model_digest=f"sha256:{digest}",
        spec_path=None,
        spec_digest=_SPEC,
        instance_type=instance.name,
        started_at=started_at,
        complete=not options.only and not options.skip,
    )
    scratch = Path(tempfile.mkdtemp(prefix="smlocal-contract-mme-"))
    try:
        sweep_stale(backend, containers.identity)
        models_dir = scratch / "models"
        names = {target: model_name_for(target) for target in staged}
        for target, model in staged.items():
            install_tree(model.path, models_dir / names[target] / "model")
        results.run(LABEL, lambda: check_label(labels))
        context: MultiModelContext | None = None
        if results.status(LABEL.id) is not Status.PASSED:
            # SageMaker refuses the Model: say so at once, not after a bring-up of an image
            # that may not serve /models at all (a single-model image waited out 120 s).
            problem = f"{LABEL.id} failed: SageMaker refuses this image, so none was started"
        else:
            context, problem = _start(
                options,
                containers=containers,
                models_dir=models_dir,
                names=names,
                labels=labels,
                instance=instance,
            )
        for info, judge in MULTI_MODEL_CHECKS:
            if context is None:
                results.record(info, Outcome(Status.SKIPPED, f"blocked: {problem}"), 0.0)
            else:
                results.run(info, lambda judge=judge: judge(context))  # type: ignore[misc]
    except KeyboardInterrupt:
        with deferred_signals():
            result = containers.close()
        raise SuiteInterrupted(containers.phase, result) from None
    finally:
        if not containers.closed:
            with deferred_signals():
                containers.close()
        shutil.rmtree(scratch, ignore_errors=True)
    report.results = [CheckResult(i, o, t) for i, o, t in results.report_results]
    report.wall_s = time.perf_counter() - clock
    return report


def _start(
    options: MultiModelOptions,
    *,
    containers: RunContainers,
    models_dir: Path,
    names: dict[str, str],
    labels: dict[str, str],
    instance: InstanceType,
) -> tuple[MultiModelContext | None, str]:
    """Start the container and wait for /ping 200: (context, "") or (None, why not)."""
    containers.phase = "bring-up"
    backend = RecordingBackend(Conditions(), None, containers)
    run = ContainerRun(
        image=options.image,
        name=f"smlocal-contract-mme-{uuid.uuid4().hex[:8]}",
        model_dir=None,
        env=dict(MULTI_MODEL_ENV),
        cpus=float(min(instance.vcpus, backend.host_cpus())),
        memory_bytes=instance.memory_bytes,
        labels={LABEL_SESSION: "contract"},
        models_dir=models_dir,
    )
    container = backend.start(run)
    deadline = time.monotonic() + options.startup_timeout_s
    while time.monotonic() < deadline:
        state = backend.state(container.id)
        if not state.running:
            tail = backend.logs(container.id, tail=5).strip().replace("\n", " | ")
            return None, f"the container exited with code {state.exit_code}: {tail}"
        if call(container.published, "GET", "/ping", timeout_s=2.0).status == 200:
            address, _ = live_address(container)
            containers.phase = "multi-model checks"
            return MultiModelContext(address, labels, names), ""
        time.sleep(0.25)
    return None, f"/ping did not answer 200 within {options.startup_timeout_s:g} s"
