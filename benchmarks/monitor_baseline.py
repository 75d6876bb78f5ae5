"""Benchmark: `smlocal monitor baseline` on 1,000,000 rows x 10 columns (issue 14: goal <= 30 s).

Also, for scale: `smlocal monitor run` over ``--run-records`` captured records (CSV encoded,
one hour file per 25,000) against that baseline. No goal; it shows the per-record cost.

Writes a CSV of ``--rows`` rows (5 Fractional columns, 3 Integral, 2 String categories, a few
missing values), then times the installed ``smlocal monitor baseline`` on it as a user runs it
(the whole command: interpreter start, parsing, profiling, KLL sketches, writing both files),
``--rounds`` times, and prints the median against the goal, and the CPU parse+profile time of
the package function alone for comparison. The CSV is made once per size under a temp dir.

Run: .venv/bin/python benchmarks/monitor_baseline.py [--rows 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

SMLOCAL = os.path.join(os.path.dirname(sys.executable), "smlocal")
GOAL_S = 30.0


def make_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    columns = [np.char.mod("%.6f", rng.normal(i, 1 + i, rows)) for i in range(5)]
    columns += [rng.integers(0, 10**i, rows).astype(str) for i in (1, 3, 6)]
    columns += [rng.choice(["red", "green", "blue"], rows), rng.choice(["a", "b"], rows)]
    columns[0][::997] = ""  # some missing values
    with path.open("w") as out:
        step = 100_000
        for start in range(0, rows, step):
            block = [c[start : start + step] for c in columns]
            out.write("\n".join(",".join(r) for r in zip(*block, strict=True)) + "\n")


def make_capture(root: Path, data: Path, records: int) -> None:
    """Capture files in SageMaker's layout, the payloads rows of the training CSV."""
    lines = data.read_text().splitlines()[:records]
    for start in range(0, len(lines), 25_000):
        hour = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=start // 25_000)
        folder = root / "ep" / "AllTraffic" / f"{hour:%Y/%m/%d/%H}"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"00-00-000-{uuid.uuid4()}.jsonl").open("w") as out:
            for i, row in enumerate(lines[start : start + 25_000]):
                when = (hour + timedelta(seconds=i % 3600)).strftime("%Y-%m-%dT%H:%M:%SZ")
                out.write(json.dumps({
                    "captureData": {"endpointInput": {"observedContentType": "text/csv",
                                                      "mode": "INPUT", "data": row,
                                                      "encoding": "CSV"}},
                    "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": when},
                    "eventVersion": "0",
                }) + "\n")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run-records", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.gettempdir()) / f"smlocal-bench-monitor-{args.rows}"
    work.mkdir(exist_ok=True)
    data = work / "train.csv"
    if not data.exists():
        print(f"writing {args.rows:,} rows x 10 columns to {data} ...", flush=True)
        make_csv(data, args.rows)
    size_mb = data.stat().st_size / 1e6
    times = []
    for i in range(args.rounds):
        started = time.perf_counter()
        subprocess.run(
            [SMLOCAL, "monitor", "baseline", "--dataset", str(data), "--out", str(work / "out")],
            check=True, capture_output=True,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
        print(f"round {i + 1}: {times[-1]:.2f} s", flush=True)
    from smlocal.monitor.baseline import profile_table
    from smlocal.monitor.table import read_dataset

    cpu = time.process_time()
    wall = time.perf_counter()
    profile_table(read_dataset(data, header=False))
    print(
        f"package only (read + profile, no process start or writing): "
        f"{time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU"
    )
    capture = work / f"capture-{args.run_records}"
    if not capture.exists():
        make_capture(capture, data, args.run_records)
    started = time.perf_counter()
    run = subprocess.run(
        [SMLOCAL, "monitor", "run", "--capture", str(capture), "--baseline", str(work / "out"),
         "--out", str(work / "report")],
        check=False, capture_output=True,
    )  # fmt: skip
    run_s = time.perf_counter() - started
    assert run.returncode in (0, 1), run.stderr.decode()[-2000:]
    print(
        f"smlocal monitor run, {args.run_records:,} captured records: {run_s:.2f} s "
        f"({run_s / args.run_records * 1e6:.0f} us per record)"
    )
    median = statistics.median(times)
    print(
        f"smlocal monitor baseline, {args.rows:,} rows x 10 columns ({size_mb:.0f} MB CSV): "
        f"median {median:.2f} s over {args.rounds} rounds (min {min(times):.2f}, "
        f"max {max(times):.2f}); goal <= {GOAL_S:.0f} s: {median / GOAL_S:.2f} of it"
    )


if __name__ == "__main__":
    main()
