"""Benchmark: the local SageMaker service (`smlocal server`) around the containers it runs.

Prints, for the trivial ``smlocal-fixture/echo`` container, in ONE run (same-run figures only;
these machines are noisy):

1. CreateEndpoint → InService (DescribeEndpoint polled every 5 ms) against the container's own
   start (`docker run` + /ping every 5 ms until the first 200), interleaved, medians;
2. UpdateEndpoint switch-over: from the UpdateEndpoint call to the first answer of the new
   fleet under a request loop, against the same container start; and failed requests (0);
3. runtime latency (p50/p99 of sequential keep-alive InvokeEndpoint calls) with three
   endpoints served at once, against the container called directly on its bridge address,
   interleaved in rounds; the service runs as its own process (`smlocal server`);
4. an endpoint's latency while other endpoints are created and deleted (in a process of its
   own), against the idle service and against the same churn of containers done with plain
   Docker (what starting containers costs this machine anyway), interleaved in rounds.

Goals (issue 10): InService within 50 ms of the container's first 200 ping; the runtime API's
added latency no worse than `smlocal serve`'s (+0.46 ms p50 on this machine).

Run: .venv/bin/python benchmarks/service.py [--startups 5] [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import boto3
import docker
from botocore import UNSIGNED
from botocore.config import Config
from runtime_api import (
    _latencies,
    _published_port,
    _quantile,
    _startup_direct,
    _until_ping_ok,
)

IMAGE = "smlocal-fixture/echo:latest"
SMLOCAL = os.path.join(os.path.dirname(sys.executable), "smlocal")


def _clients(url: str) -> tuple[Any, Any]:
    config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    make = boto3.client
    return (
        make("sagemaker", endpoint_url=url, region_name="us-east-1", config=config),
        make("sagemaker-runtime", endpoint_url=url, region_name="us-east-1", config=config),
    )


def _config(sm: Any, name: str, model: str) -> None:
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "A",
                "ModelName": model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )


def _wait(sm: Any, name: str, status: str = "InService") -> float:
    while True:
        now = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
        if now == status:
            return time.perf_counter()
        if now == "Failed":
            raise RuntimeError(f"{name} failed")
        time.sleep(0.005)


def _delete(sm: Any, name: str) -> None:
    sm.delete_endpoint(EndpointName=name)
    while True:
        try:
            sm.describe_endpoint(EndpointName=name)
        except sm.exceptions.ClientError:
            return
        time.sleep(0.01)


def _first_200(name: str, found: list[float], stop: threading.Event) -> None:
    """Poll the endpoint's container's own /ping every 5 ms; note when it first answers 200."""
    client = docker.from_env()
    port = None
    while port is None and not stop.is_set():
        for container in client.containers.list(filters={"label": f"smlocal.endpoint={name}"}):
            ports = container.attrs["NetworkSettings"]["Ports"].get("8080/tcp") or []
            port = int(ports[0]["HostPort"]) if ports else None
        time.sleep(0.005)
    while port is not None and not stop.is_set():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                found.append(time.perf_counter())
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.005)


def report_startup(sm: Any, startups: int) -> None:
    client = docker.from_env()
    direct, service, beyond = [], [], []
    for index in range(startups):
        direct.append(_startup_direct(client, IMAGE))
        name = f"bench-start-{index}"
        first: list[float] = []
        stop = threading.Event()
        watcher = threading.Thread(target=_first_200, args=(name, first, stop), daemon=True)
        started = time.perf_counter()
        sm.create_endpoint(EndpointName=name, EndpointConfigName="bench-a")
        watcher.start()
        in_service = _wait(sm, name)
        stop.set()
        watcher.join()
        service.append(in_service - started)
        if first:
            beyond.append(in_service - first[0])
        _delete(sm, name)
    d, s = statistics.median(direct), statistics.median(service)
    print(f"container start to first 200 ping (docker run + poll): median {d * 1000:.0f} ms")
    print(f"CreateEndpoint -> InService:                           median {s * 1000:.0f} ms")
    if beyond:
        print(
            "  InService seen by the client after the container's first 200 ping: median "
            f"{statistics.median(beyond) * 1000:.0f} ms, max {max(beyond) * 1000:.0f} ms over "
            f"{len(beyond)} (goal <= 50 ms)"
        )


def report_update(sm: Any, runtime: Any, direct_start_s: float) -> None:
    sm.create_endpoint(EndpointName="bench-update", EndpointConfigName="bench-a")
    _wait(sm, "bench-update")
    answers: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                reply = runtime.invoke_endpoint(
                    EndpointName="bench-update",
                    Body=b"{}",
                    ContentType="application/json",
                )
                reply["Body"].read()
                answers.append(reply["InvokedProductionVariant"])
            except Exception as error:
                failures.append(repr(error))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    time.sleep(0.5)
    before = len(answers)
    started = time.perf_counter()
    sm.update_endpoint(EndpointName="bench-update", EndpointConfigName="bench-b")
    switched = _wait(sm, "bench-update") - started
    stop.set()
    thread.join()
    print(
        f"UpdateEndpoint -> InService on the new fleet: {switched * 1000:.0f} ms "
        f"({(switched - direct_start_s) * 1000:+.0f} ms beyond one container start); "
        f"{len(answers) - before} requests during it, {len(failures)} failed"
    )
    _delete(sm, "bench-update")


def report_latency(sm: Any, url: str, requests: int, rounds: int) -> None:
    names = [f"bench-many-{i}" for i in range(3)]
    for name in names:
        sm.create_endpoint(EndpointName=name, EndpointConfigName="bench-a")
    for name in names:
        _wait(sm, name)
    container = docker.from_env().containers.list(
        filters={"label": f"smlocal.endpoint={names[0]}"}
    )[0]
    networks = container.attrs["NetworkSettings"]["Networks"].values()
    bridge = next(n["IPAddress"] for n in networks if n.get("IPAddress"))
    port = int(url.rsplit(":", 1)[1])
    samples: dict[str, list[float]] = {"direct (bridge IP)": [], "service, 3 endpoints": []}
    for _ in range(rounds):
        samples["direct (bridge IP)"] += _latencies(bridge, 8080, "/invocations", requests)
        for name in names:
            samples["service, 3 endpoints"] += _latencies(
                "127.0.0.1", port, f"/endpoints/{name}/invocations", requests // len(names)
            )
    base = samples["direct (bridge IP)"]
    for label, values in samples.items():
        p50, p99 = _quantile(values, 0.5) * 1000, _quantile(values, 0.99) * 1000
        extra = ""
        if values is not base:
            extra = (
                f"  (added {p50 - _quantile(base, 0.5) * 1000:+.3f} ms p50, "
                f"{p99 - _quantile(base, 0.99) * 1000:+.3f} ms p99)"
            )
        print(f"{label:24} p50 {p50:.3f} ms  p99 {p99:.3f} ms{extra}")
    for name in names:
        _delete(sm, name)


def _churn_service(url: str, stop: Any) -> None:
    """Create and delete endpoints on the service until ``stop`` (its own process)."""
    sm, _ = _clients(url)
    index = 0
    while not stop.is_set():
        name = f"bench-churn-{os.getpid()}-{index}"
        sm.create_endpoint(EndpointName=name, EndpointConfigName="bench-b")
        while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
            time.sleep(0.05)
        sm.delete_endpoint(EndpointName=name)
        while True:
            try:
                sm.describe_endpoint(EndpointName=name)
            except sm.exceptions.ClientError:
                break
            time.sleep(0.05)
        index += 1


def _churn_docker(_url: str, stop: Any) -> None:
    """The same container churn with plain Docker, no smlocal: what starting and removing
    containers costs this machine anyway (the noise floor of the comparison)."""
    client = docker.from_env()
    while not stop.is_set():
        container = client.containers.run(
            IMAGE, ["serve"], detach=True, ports={"8080/tcp": ("127.0.0.1", None)},
            labels={"smlocal.session": "bench-docker-churn"},
        )  # fmt: skip
        try:
            _until_ping_ok(_published_port(container), 0.05, stop)
        finally:
            container.stop(timeout=30)
            container.remove(force=True)


def report_busy_control_plane(sm: Any, url: str, requests: int, rounds: int) -> None:
    """Another endpoint's latency while endpoints are created and deleted, against the idle
    service and against the same container churn done with plain Docker (so what starting
    containers costs this 2-core machine is not counted against the service). The churn runs
    in a process of its own, so it takes no GIL from the measuring loop; rounds interleave."""
    import multiprocessing

    sm.create_endpoint(EndpointName="bench-steady", EndpointConfigName="bench-a")
    _wait(sm, "bench-steady")
    port = int(url.rsplit(":", 1)[1])
    path = "/endpoints/bench-steady/invocations"
    samples: dict[str, list[float]] = {
        "idle service": [],
        "while docker run/rm churns": [],
        "while endpoints churn": [],
    }
    churns = {"while docker run/rm churns": _churn_docker, "while endpoints churn": _churn_service}
    context = multiprocessing.get_context("spawn")
    for _ in range(rounds):
        samples["idle service"] += _latencies("127.0.0.1", port, path, requests)
        for label, churn in churns.items():
            stop = context.Event()
            worker = context.Process(target=churn, args=(url, stop), daemon=True)
            worker.start()
            time.sleep(1.0)  # the churn is under way (a container starting)
            samples[label] += _latencies("127.0.0.1", port, path, requests)
            stop.set()
            worker.join(timeout=120)
    floor = _quantile(samples["while docker run/rm churns"], 0.99)
    for label, values in samples.items():
        p99 = _quantile(values, 0.99)
        print(
            f"{label:28} p50 {_quantile(values, 0.5) * 1000:.3f} ms  p99 {p99 * 1000:.3f} ms"
            f"  (p99 {p99 / floor:.2f}x the docker-churn floor)"
        )
    _delete(sm, "bench-steady")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startups", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="smlocal-bench-")
    env = {**os.environ, "SMLOCAL_HOME": home}
    started = subprocess.run(
        [SMLOCAL, "server", "--port", "0", "--detach"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    url = started.stdout.strip().splitlines()[-1]
    try:
        sm, runtime = _clients(url)
        for model, config in (("bench-m", "bench-a"), ("bench-m2", "bench-b")):
            sm.create_model(ModelName=model, PrimaryContainer={"Image": IMAGE})
            _config(sm, config, model)
        report_startup(sm, args.startups)
        direct = _startup_direct(docker.from_env(), IMAGE)
        report_update(sm, runtime, direct)
        report_latency(sm, url, args.requests, args.rounds)
        report_busy_control_plane(sm, url, args.requests, args.rounds)
    finally:
        subprocess.run([SMLOCAL, "server", "stop"], env=env, check=False)


if __name__ == "__main__":
    main()
