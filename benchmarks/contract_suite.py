"""Benchmark: wall time of the full contract suite on the reference sklearn image (goal < 60 s).

Runs ``smlocal contract-test``'s suite in-process, exactly as the command does (spec
``contracts/specs/sklearn-iris.yaml``, the built model tarball), and prints the wall time and
the slowest checks. A benchmark, not a test: it reports, and exits 1 only if the suite failed.

usage: .venv/bin/python benchmarks/contract_suite.py [--runs N] [--image IMAGE]
needs: `make sklearn-image` (the image and containers/sklearn/build/model.tar.gz)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from smlocal.contracts.runner import SuiteOptions, run_suite
from smlocal.emulator.state import StateDir

REPO = Path(__file__).resolve().parent.parent
GOAL_S = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--image", default="smlocal/sklearn-iris:latest")
    parser.add_argument(
        "--model", default=str(REPO / "containers" / "sklearn" / "build" / "model.tar.gz")
    )
    parser.add_argument(
        "--spec", type=Path, default=REPO / "contracts" / "specs" / "sklearn-iris.yaml"
    )
    args = parser.parse_args(argv)
    walls: list[float] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="smlocal-bench-") as home:
        for run in range(1, args.runs + 1):
            started = time.perf_counter()
            report = run_suite(
                SuiteOptions(
                    image=args.image,
                    model=args.model,
                    spec_path=args.spec,
                    state=StateDir(Path(home)),
                )
            )
            walls.append(time.perf_counter() - started)
            ok = ok and report.passed
            slowest = sorted(report.results, key=lambda r: r.duration_s, reverse=True)[:4]
            top = ", ".join(f"{r.check.id} {r.duration_s:.1f}s" for r in slowest)
            verdict = "passed" if report.passed else "FAILED"
            print(f"run {run}: {walls[-1]:.1f} s wall, {verdict}; slowest: {top}")
    median = statistics.median(walls)
    goal = "within" if median < GOAL_S else "OVER"
    print(
        f"contract suite on {args.image}: median {median:.1f} s over {len(walls)} run(s) "
        f"({goal} the {GOAL_S:.0f} s goal)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
