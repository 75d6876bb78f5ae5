"""The reference transformers image keeps the contract: zero errors with its shipped spec.

The image and model come from the transformers reference tests' session fixture (trains the
tiny model if stale, builds the image; a repeat build takes seconds). The full suite runs, no
``--skip``: about 20 s, most of it the model loading and the SIGTERM drain.
"""

from __future__ import annotations

from pathlib import Path

from smlocal.contracts.model import Status
from smlocal.contracts.runner import SuiteOptions, run_suite
from smlocal.emulator.state import StateDir
from tests.conftest import REPO
from tests.integration.test_transformers_reference import (
    TRANSFORMERS_MODEL,
    transformers_image,  # noqa: F401  (the session fixture, used by name)
)

SPEC = REPO / "contracts" / "specs" / "transformers-text.yaml"


def test_transformers_reference_passes_with_zero_errors(
    transformers_image: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    report = run_suite(
        SuiteOptions(
            image=transformers_image,
            model=str(TRANSFORMERS_MODEL),
            spec_path=SPEC,
            state=StateDir(tmp_path / "home"),
        )
    )
    failed = {r.check.id: r.outcome.evidence for r in report.results if r.status == Status.FAILED}
    assert failed == {}
    assert report.passed and report.complete
    # A spec with examples, network isolation and a model: every check applies and passes
    # (no warning either: TOKENIZERS_PARALLELISM in ENV is not a credential).
    assert {r.status for r in report.results} == {Status.PASSED}
    examples = report.result("invocations.examples")
    assert examples is not None and "3 examples" in examples.outcome.summary
    concurrency = report.result("invocations.concurrency")
    assert concurrency is not None and "8 concurrent" in concurrency.outcome.summary
