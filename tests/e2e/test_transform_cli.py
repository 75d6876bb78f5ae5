"""`smlocal transform` as a user runs it: real containers, local directories, exit codes,
progress lines when stderr is no terminal, Ctrl-C stopping the job with nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL, fixture_image

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SMLOCAL = str(Path(sys.executable).parent / "smlocal")
CSV = ["--content-type", "text/csv", "--accept", "text/csv"]
JOIN = ["--input-filter", "$[1:]", "--join-input", "--output-filter", "$[0,-1]"]


def _rows(folder: Path, name: str, count: int, poison: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"id-{i},5.{i % 9},3.5,1.4,0.2" for i in range(count)]
    if poison:
        lines[count // 2] = "id-x,poison,1,2,3"
    (folder / name).write_text("\n".join(lines) + "\n")


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMLOCAL, "transform", "--port", "0", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _left(home: Path) -> list[str]:
    id_file = home / "service" / "id"
    if not id_file.exists():
        return []
    label = f"smlocal.session={id_file.read_text().strip()}"
    found = docker.from_env().containers.list(all=True, filters={"label": label})
    return [c.name for c in found]


def test_transform_writes_the_joined_answers_and_reports_progress(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    _rows(tmp_path / "in", "a.csv", 3000)
    _rows(tmp_path / "in" / "more", "b.csv", 10)
    done = _run(
        SKLEARN_IMAGE, "--model", str(SKLEARN_MODEL), "--input", str(tmp_path / "in"),
        "--output", str(tmp_path / "out"), *CSV, "--strategy", "MultiRecord",
        "--concurrency", "2", *JOIN,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str((tmp_path / "out").resolve())
    assert "Completed - objects 2/2 done, 3010 records" in done.stderr
    lines = (tmp_path / "out" / "a.csv.out").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == [f"id-{i}" for i in range(3000)]
    assert {line.split(",")[1] for line in lines} <= {"setosa", "versicolor", "virginica"}
    assert len((tmp_path / "out" / "more" / "b.csv.out").read_text().splitlines()) == 10
    assert _left(smlocal_home) == []


def test_a_failed_job_prints_its_reason_and_exits_1(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    _rows(tmp_path / "in", "bad.csv", 100, poison=True)
    failed = _run(
        fixture_image("batch-poison"), "--input", str(tmp_path / "in"),
        "--output", str(tmp_path / "out"), *CSV, "--retries", "0",
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "bad.csv" in failed.stderr and "fixture: poisoned record" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (tmp_path / "out" / "bad.csv.out").exists()


def test_bad_input_exits_2_before_anything_runs(smlocal_home: Path, tmp_path: Path) -> None:
    missing = _run(SKLEARN_IMAGE, "--input", str(tmp_path / "nope"), "--output", str(tmp_path))
    assert missing.returncode == 2, missing.stderr
    assert "no such file or directory" in missing.stderr
    _rows(tmp_path / "in", "a.csv", 3)
    refused = _run(
        SKLEARN_IMAGE, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
        "--output-filter", "$..deep", *CSV,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "not in SageMaker's subset" in refused.stderr
    no_image = _run(
        "smlocal-fixture/no-such-image:latest", "--input", str(tmp_path / "in"),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert no_image.returncode == 2, no_image.stderr
    assert "is not in the local Docker engine" in no_image.stderr
    assert "Traceback" not in missing.stderr + refused.stderr + no_image.stderr


def test_ctrl_c_stops_the_job_and_leaves_nothing(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    _rows(tmp_path / "in", "a.csv", 200_000)
    process = subprocess.Popen(
        [
            SMLOCAL, "transform", "--port", "0", SKLEARN_IMAGE, "--model", str(SKLEARN_MODEL),
            "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), *CSV,
            "--strategy", "SingleRecord", "--input-filter", "$[1:]",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if "records" in line and " 0 records" not in line:
            break
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, "".join(seen) + rest
    assert "interrupted: transform job" in rest and "is Stopped" in rest, rest
    assert not (tmp_path / "out" / "a.csv.out").exists()
    assert _left(smlocal_home) == []
