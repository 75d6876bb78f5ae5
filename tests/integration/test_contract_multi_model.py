"""`smlocal contract-test --multi-model`: the reference multi-model image passes every mme.* check,
and each broken fixture image fails exactly the check for the rule it breaks (the checks
that need that one are skipped, the others pass), for the reason that rule gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smlocal.contracts.checks.multi_model import MULTI_MODEL_CHECKS
from smlocal.contracts.model import Status
from smlocal.contracts.multi_model_suite import MultiModelOptions, run_multi_model_suite
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.state import StateDir
from tests.conftest import REPO, fixture_image

pytestmark = pytest.mark.docker

REFERENCE = "smlocal/multi-model-iris:latest"
MODELS = REPO / "containers" / "multi-model" / "build" / "models"
FIXTURES = [
    "mme-good",
    "mme-no-label",
    "mme-load-fails",
    "mme-no-409",
    "mme-bad-pages",
    "mme-get-always-200",
    "mme-invoke-unloaded",
    "mme-unload-noop",
]


@pytest.fixture(scope="module")
def images() -> None:
    """The reference image, its models and the mme fixtures (`make test` built them)."""
    backend = DockerBackend()
    if not (MODELS / "logistic.tar.gz").is_file() or not backend.image_exists(REFERENCE):
        subprocess.run(["make", "-C", str(REPO), "multi-model-image"], check=True)
    missing = [f for f in FIXTURES if not backend.image_exists(fixture_image(f))]
    if missing:
        subprocess.run(["bash", str(REPO / "scripts" / "build-fixtures.sh"), *missing], check=True)


def _verdicts(image: str, tmp_path: Path) -> dict[str, tuple[Status, str, tuple[str, ...]]]:
    options = MultiModelOptions(image=image, models=str(MODELS), state=StateDir(tmp_path))
    report = run_multi_model_suite(options)
    return {r.check.id: (r.status, r.outcome.summary, r.outcome.evidence) for r in report.results}


# fixture -> (the check that fails, words its summary or evidence must hold, blocked checks)
BROKEN = {
    # no label: SageMaker refuses the Model, so nothing else is tried
    "mme-no-label": ("mme.label", "CreateModel", tuple(i.id for i, _ in MULTI_MODEL_CHECKS)),
    "mme-load-fails": (
        "mme.load",
        "500",
        ("mme.load-twice", "mme.list", "mme.get", "mme.invoke", "mme.unload"),
    ),
    "mme-no-409": ("mme.load-twice", "not 409", ()),
    "mme-bad-pages": ("mme.list", "still a nextPageToken", ()),
    "mme-get-always-200": ("mme.get", "never loaded", ("mme.unload",)),
    "mme-invoke-unloaded": ("mme.invoke", "never loaded", ("mme.unload",)),
    "mme-unload-noop": ("mme.unload", "get after unload answered 200", ()),
}


def test_the_reference_multi_model_image_passes(images: None, tmp_path: Path) -> None:
    verdicts = _verdicts(REFERENCE, tmp_path)
    failed = {k: v for k, v in verdicts.items() if v[0] == Status.FAILED}
    assert not failed
    assert verdicts["mme.list"][0] == Status.PASSED
    assert verdicts["mme.out-of-memory"][0] == Status.NOT_APPLICABLE


def test_the_good_fixture_passes(images: None, tmp_path: Path) -> None:
    verdicts = _verdicts(fixture_image("mme-good"), tmp_path)
    assert all(v[0] != Status.FAILED for v in verdicts.values()), verdicts


@pytest.mark.parametrize("fixture", sorted(BROKEN))
def test_each_broken_fixture_fails_its_check(images: None, tmp_path: Path, fixture: str) -> None:
    check, words, blocked = BROKEN[fixture]
    verdicts = _verdicts(fixture_image(fixture), tmp_path)
    status, summary, evidence = verdicts[check]
    assert status == Status.FAILED, verdicts
    assert words in summary + " ".join(evidence)
    for other, (other_status, other_summary, _) in verdicts.items():
        if other == check:
            continue
        if other in blocked:
            assert other_status == Status.SKIPPED and f"{check} failed" in other_summary
        else:
            assert other_status != Status.FAILED, (other, other_summary)


def test_the_command_line(images: None, tmp_path: Path) -> None:
    smlocal = [sys.executable, "-m", "smlocal"]
    env = {**os.environ, "SMLOCAL_HOME": str(tmp_path / "home")}
    ran = subprocess.run(
        [*smlocal, "contract-test", REFERENCE, "--multi-model", "--models", str(MODELS)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "mme.unload" in ran.stdout and "contract passed" in ran.stderr
    flags = ["--multi-model", "--models", str(MODELS)]
    broken = subprocess.run(
        [*smlocal, "contract-test", fixture_image("mme-no-409"), *flags],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert broken.returncode == 1, broken.stderr
    usage = subprocess.run(
        [*smlocal, "contract-test", REFERENCE, "--multi-model"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert usage.returncode == 2 and "--models" in usage.stderr
    assert "Traceback" not in usage.stderr
