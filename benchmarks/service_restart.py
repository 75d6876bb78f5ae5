"""Benchmark: time from a service restart after a SIGKILL to every endpoint InService, with
the containers adopted (they survived the SIGKILL) vs. started afresh (removed before the
restart, which is what the service did before re-adoption).

The clock starts when `smlocal server --detach` is launched and stops when DescribeEndpoint
says InService for every endpoint (polled every 20 ms); "service up" is when the detached
start returned (the port answers). A throwaway SMLOCAL_HOME; everything is stopped at the end.

usage: .venv/bin/python benchmarks/service_restart.py [--endpoints 2] [--rounds 3]
needs: `make sklearn-image` (the image and containers/sklearn/build/model.tar.gz)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import docker
from botocore import UNSIGNED
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
SMLOCAL = str(Path(sys.executable).parent / "smlocal")
IMAGE = "smlocal/sklearn-iris:latest"
MODEL = REPO / "containers" / "sklearn" / "build" / "model.tar.gz"


def start(env: dict[str, str], port: str) -> str:
    done = subprocess.run(
        [SMLOCAL, "server", "--port", port, "--detach"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def kill(home: Path) -> None:
    pid = json.loads((home / "service" / "server.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def wait_all(sm: Any, names: list[str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        states = [sm.describe_endpoint(EndpointName=n)["EndpointStatus"] for n in names]
        if all(s == "InService" for s in states):
            return
        if "Failed" in states or time.monotonic() > deadline:
            raise SystemExit(f"endpoints did not come back: {states}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="smlocal-bench-"))
    env = {**os.environ, "SMLOCAL_HOME": str(home)}
    url = start(env, "0")
    port = url.rsplit(":", 1)[1]
    config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", config=config)
    names = [f"bench{i}" for i in range(args.endpoints)]
    engine = docker.from_env()
    service_id = (home / "service" / "id").read_text().strip()
    timings: dict[str, list[float]] = {"adopted": [], "fresh": [], "service up": []}
    try:
        sm.create_model(
            ModelName="m", PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(MODEL)}
        )
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {"VariantName": "A", "ModelName": "m", "InstanceType": "ml.m5.large",
                 "InitialInstanceCount": 1}
            ],
        )  # fmt: skip
        for name in names:
            sm.create_endpoint(EndpointName=name, EndpointConfigName="c")
        wait_all(sm, names)
        for _ in range(args.rounds):
            for mode in ("adopted", "fresh"):
                kill(home)
                if mode == "fresh":
                    mine = {"label": f"smlocal.session={service_id}"}
                    for container in engine.containers.list(all=True, filters=mine):
                        container.remove(force=True)
                started = time.perf_counter()
                start(env, port)
                timings["service up"].append(time.perf_counter() - started)
                wait_all(sm, names)
                timings[mode].append(time.perf_counter() - started)
                print(
                    f"{mode:8s} {timings[mode][-1]:6.2f} s "
                    f"(service answering after {timings['service up'][-1]:.2f} s)",
                    flush=True,
                )
    finally:
        subprocess.run([SMLOCAL, "server", "stop"], env=env, check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    for mode, values in timings.items():
        if values:
            print(
                f"{mode}: median {statistics.median(values):.2f} s "
                f"(min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"
            )


if __name__ == "__main__":
    main()
