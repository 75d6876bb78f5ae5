"""The README's commands, run as written, as a new user runs them.

Each ```bash block of the sections below is taken from README.md itself (so the test breaks
when the README does) and run by bash in a fresh working directory holding the checkout's
``containers/`` and ``contracts/``, with a fresh ``SMLOCAL_HOME``, a ``HOME`` without
``~/.aws`` and no ``AWS_*`` variables: nothing but what the README tells a user to set.
The service listens on the README's port, 127.0.0.1:8080. The drift-monitoring recipe runs
too (capture, baseline, run). ``smlocal promote`` needs an AWS
account and is left to tests/e2e/test_promote_cli.py (moto); the quick start's
``make demo`` / ``make test`` are what CI runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from smlocal.emulator.backend import LABEL_ENDPOINT

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
README_PORT = 8080


def bash_blocks(section: str) -> list[str]:
    """The ```bash blocks of the README section whose ``## `` heading starts with ``section``."""
    text = (REPO / "README.md").read_text()
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    (body,) = [p for p in parts if p.startswith(section)]
    return re.findall(r"^```bash\n(.*?)^```", body, flags=re.MULTILINE | re.DOTALL)


def command_lines(block: str) -> list[str]:
    """A block's commands, one per line (continuations joined), comments dropped."""
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()
            and not line.lstrip().startswith("#")]  # fmt: skip


@pytest.fixture
def user(tmp_path: Path, docker_images: None) -> Iterator[dict[str, str]]:
    """A new user's shell: the venv's commands on PATH, nothing of AWS configured."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(("127.0.0.1", README_PORT))
        except OSError:
            pytest.fail(f"127.0.0.1:{README_PORT} is taken; the README's commands need it")
    work = tmp_path / "work"
    work.mkdir()
    for name in ("containers", "contracts", ".venv"):
        (work / name).symlink_to(REPO / name)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(home),
        SMLOCAL_HOME=str(tmp_path / "smlocal"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PWD=str(work),
        WORK=str(work),
    )
    yield env
    subprocess.run([str(BIN / "smlocal"), "server", "stop"], env=env, cwd=work,
                   capture_output=True, timeout=120, check=False)  # fmt: skip


def shell(script: str, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=env["WORK"], env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"README commands failed:\n{script}\n{done.stdout}{done.stderr}"
    return done.stdout


def leftovers(env: dict[str, str]) -> list[str]:
    service = Path(env["SMLOCAL_HOME"]) / "service" / "id"
    if not service.exists():
        return []
    session = service.read_text().strip()
    found = docker.from_env().containers.list(
        all=True, ignore_removed=True, filters={"label": f"smlocal.session={session}"}
    )
    return [str(c.labels.get(LABEL_ENDPOINT)) for c in found]


def test_the_readme_as_written(user: dict[str, str]) -> None:
    work = Path(user["WORK"])
    server_block, aws_block = bash_blocks("The local SageMaker service")
    start = next(c for c in command_lines(server_block) if c.endswith("--detach"))
    assert start == "smlocal server --detach"
    shell(start, user)
    assert shell("smlocal server status", user).strip() == f"http://127.0.0.1:{README_PORT}"

    # The control plane through the AWS CLI, as the README deploys and invokes.
    shell(aws_block, user)
    answer = json.loads((work / "answer.json").read_text())
    assert len(answer["predictions"]) == 1

    # The quick path: `smlocal serve` in the foreground, called every way the README shows.
    serve_block, calls_block = bash_blocks("Serving an image")
    (serve,) = command_lines(serve_block)
    serving = subprocess.Popen(
        ["bash", "-c", f"exec {serve}"], cwd=work, env=user, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    seen: list[str] = []
    # Read serve's output all along: it streams the endpoint's log, and a full pipe would
    # block it.
    reader = threading.Thread(target=lambda: seen.extend(serving.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("InService" in line for line in seen):
            assert serving.poll() is None, f"serve ended before InService:\n{''.join(seen)}"
            assert time.monotonic() < deadline, "".join(seen)
            time.sleep(0.2)
        out = shell(calls_block, user)
        assert out.count("predictions") >= 3, out  # boto3, curl and smlocal invoke
        assert json.loads((work / "out.json").read_text())["predictions"]

        (contract,) = [" ".join(command_lines(b)) for b in bash_blocks("Proving the hosting")]
        shell(contract, user, timeout=600)
        assert json.loads((work / "contract.json").read_text())

        loadtest = command_lines(bash_blocks("Load testing")[0])[0]
        shell(loadtest, user, timeout=900)
        summary = json.loads((work / "loadtest-report" / "loadtest-summary.json").read_text())
        assert summary["max_rps"] > 0
    finally:
        serving.send_signal(signal.SIGINT)  # Ctrl-C: serve deletes what it made
        try:
            serving.wait(timeout=120)
        except subprocess.TimeoutExpired:
            serving.kill()
            raise
    reader.join(timeout=10)
    assert serving.returncode == 0, "".join(seen)  # Ctrl-C after InService is a normal stop
    assert "sklearn-iris: deleted" in "".join(seen)
    # The drift-monitoring recipe on the reference model: capture, baseline, run.
    (recipe,) = [b for b in bash_blocks("Drift monitoring") if "--capture ./capture" in b]
    shell(recipe, user, timeout=600)
    report = json.loads((work / "report" / "constraint_violations.json").read_text())
    assert report == {"violations": []}  # traffic like the training data
    assert list((work / "capture" / "iris-watch").rglob("*.jsonl"))
    shell("smlocal server stop", user)
    assert leftovers(user) == []
