"""Benchmark: a serverless endpoint's cold start on the local service, beyond the container's own.

Prints, for the trivial ``smlocal-fixture/echo`` container, in ONE run (same-run figures only;
these machines are noisy), interleaved over ``--rounds``:

1. the container's own readiness: `docker run` + /ping every 5 ms until the first 200, then one
   POST /invocations (what any cold start must at least cost);
2. the first InvokeEndpoint of a fresh serverless endpoint (a cold start), through boto3;
3. the second one (warm), for comparison.

Goal (issue 12): cold start <= the container's readiness + 100 ms.

Run: .venv/bin/python benchmarks/serverless.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import docker
from runtime_api import _published_port, _until_ping_ok
from service import _clients

IMAGE = "smlocal-fixture/echo:latest"
SMLOCAL = os.path.join(os.path.dirname(sys.executable), "smlocal")
BODY = json.dumps({"x": 1})


def _direct(client: docker.DockerClient) -> float:
    """docker run → first 200 /ping → one answered /invocations."""
    started = time.perf_counter()
    container = client.containers.run(
        IMAGE, ["serve"], detach=True, ports={"8080/tcp": ("127.0.0.1", None)},
        labels={"smlocal.session": "bench-serverless-direct"},
    )  # fmt: skip
    try:
        port = _published_port(container)
        _until_ping_ok(port, 0.005)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(
            "POST", "/invocations", body=BODY, headers={"Content-Type": "application/json"}
        )
        conn.getresponse().read()
        return time.perf_counter() - started
    finally:
        container.remove(force=True)


def _serverless(sm: Any, runtime: Any, name: str) -> tuple[float, float]:
    sm.create_endpoint(EndpointName=name, EndpointConfigName="bench-serverless")
    while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
        time.sleep(0.01)
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        answer = runtime.invoke_endpoint(
            EndpointName=name, Body=BODY, ContentType="application/json"
        )
        answer["Body"].read()
        timings.append(time.perf_counter() - started)
    sm.delete_endpoint(EndpointName=name)
    while True:
        try:
            sm.describe_endpoint(EndpointName=name)
        except sm.exceptions.ClientError:
            break
        time.sleep(0.05)
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "SMLOCAL_HOME": tempfile.mkdtemp(prefix="smlocal-bench-")}
    started = subprocess.run(
        [SMLOCAL, "server", "--port", "0", "--detach"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    url = started.stdout.strip().splitlines()[-1]
    client = docker.from_env()
    try:
        sm, runtime = _clients(url)
        sm.create_model(ModelName="bench-serverless", PrimaryContainer={"Image": IMAGE})
        sm.create_endpoint_config(
            EndpointConfigName="bench-serverless",
            ProductionVariants=[
                {
                    "VariantName": "A",
                    "ModelName": "bench-serverless",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                }
            ],
        )
        direct, cold, warm = [], [], []
        for index in range(args.rounds):
            direct.append(_direct(client))
            first, second = _serverless(sm, runtime, f"bench-serverless-{index}")
            cold.append(first)
            warm.append(second)
        d, c, w = (statistics.median(v) * 1000 for v in (direct, cold, warm))
        print(f"container readiness + 1 request (docker run): median {d:.0f} ms")
        print(f"serverless first request (cold start):        median {c:.0f} ms")
        print(f"serverless second request (warm):             median {w:.1f} ms")
        print(f"cold start beyond the container's readiness: {c - d:+.0f} ms (goal <= +100 ms)")
    finally:
        subprocess.run([SMLOCAL, "server", "stop"], env=env, check=False)


if __name__ == "__main__":
    main()
