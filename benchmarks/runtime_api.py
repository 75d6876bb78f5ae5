"""Benchmark: what the emulator adds on top of the container it fronts.

Prints, for the trivial ``smlocal-fixture/echo`` container, in ONE run (this machine is noisy,
so only same-run ratios mean much):

1. latency of sequential keep-alive requests (p50 / p99), interleaved in rounds, for
   - the container called directly on its bridge address (what the emulator itself calls),
   - the container called directly on its Docker-published port,
   - the SageMaker Runtime API path of `smlocal serve` (a separate process, as users run it),
   - a raw httptools proxy (``benchmarks/floor_proxy.py``, its own process) in front of the
     bridge address: the floor, what the cheapest Python proxy costs on this machine;
   with the CPU per request of the serving process and of the floor proxy;
2. throughput with several client processes (requests/s), direct vs through the emulator
   and through the floor proxy; beside it, CPU per request: the serving process's (the local
   service: runtime API and control plane, from /proc/PID/stat), the floor proxy's (the
   same), their ratio, and the container's own (Docker's stats), the stable figures on these
   2-core machines;
3. time to InService: `docker run` + polling /ping every 5 ms until the first 200 (the
   container's own start) against the emulator's Endpoint.start() for the same image.

Goals (issue 2): <= 1 ms added at p50, <= 3 ms at p99, >= 90 % of direct throughput, and
InService within 0.25 s of the container's first 200 ping. Issue 15: <= 150 µs CPU per
InvokeEndpoint in the serving process, >= 75 % of direct throughput with 4 client processes
on the echo container (>= 85 % on the sklearn image), <= +0.2 ms p50 / +0.5 ms p99. A raw
httptools proxy was once measured at 106-123 µs per request here, hence the same-run floor.

Run: .venv/bin/python benchmarks/runtime_api.py [--requests 2000] [--seconds 5]
     .venv/bin/python benchmarks/runtime_api.py --image smlocal/sklearn-iris:latest \
         --model containers/sklearn/build/model.tar.gz   (a container that does real work)
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

IMAGE = "smlocal-fixture/echo:latest"
NAME = "bench-echo"
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
SMLOCAL = str(Path(sys.executable).parent / "smlocal")
FLOOR_PROXY = str(Path(__file__).with_name("floor_proxy.py"))
BRIDGE, PUBLISHED = "direct (bridge IP)", "direct (published port)"
API, FLOOR = "smlocal runtime API", "raw httptools proxy (floor)"


def _latencies(host: str, port: int, path: str, count: int) -> list[float]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("POST", path, body=BODY, headers=headers)
        response = conn.getresponse()
        response.read()
        samples.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"{host}:{port}{path} answered {response.status}")
    conn.close()
    return samples


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (its threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _container_cpu_s(name: str) -> float:
    """CPU seconds the endpoint's container has used so far (Docker's stats)."""
    (container,) = docker.from_env().containers.list(filters={"label": f"smlocal.endpoint={name}"})
    stats = container.stats(stream=False, one_shot=True)
    return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def _service_pid(home: str) -> int:
    (record,) = Path(home).rglob("server.json")
    return int(json.loads(record.read_text())["pid"])


def _quantile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000, method="inclusive")[round(q * 1000) - 1]


def _throughput_worker(args: tuple[str, int, str, float]) -> int:
    host, port, path, seconds = args
    conn = http.client.HTTPConnection(host, port, timeout=30)
    deadline = time.perf_counter() + seconds
    done = 0
    while time.perf_counter() < deadline:
        conn.request("POST", path, body=BODY, headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        done += 1
    return done


def _throughput(host: str, port: int, path: str, seconds: float, clients: int) -> float:
    with multiprocessing.Pool(clients) as pool:
        counts = pool.map(_throughput_worker, [(host, port, path, seconds)] * clients)
    return sum(counts) / seconds


def _published_port(container: Any) -> int:
    """The host port Docker published the container's 8080 on."""
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])


def _until_ping_ok(port: int, interval_s: float, stop: Any = None) -> bool:
    """Poll 127.0.0.1:PORT/ping until it answers 200 (True), or ``stop`` is set (False)."""
    while stop is None or not stop.is_set():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return True
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(interval_s)
    return False


def _startup_direct(client: docker.DockerClient, image: str) -> float:
    started = time.perf_counter()
    container = client.containers.run(
        image, ["serve"], detach=True, ports={"8080/tcp": ("127.0.0.1", None)}
    )
    try:
        _until_ping_ok(_published_port(container), 0.005)
        return time.perf_counter() - started
    finally:
        container.remove(force=True)


def _startup_emulator(image: str) -> float:
    from smlocal.emulator.docker_backend import DockerBackend
    from smlocal.emulator.endpoint import Endpoint
    from smlocal.emulator.spec import build_spec

    spec = build_spec(name="bench-startup", variants=[{"image": image}])
    endpoint = Endpoint(spec, DockerBackend(), {})

    async def run() -> float:
        started = time.perf_counter()
        await endpoint.start()
        took = time.perf_counter() - started
        await endpoint.stop()
        return took

    return asyncio.run(run())


Target = tuple[str, int, str]


def _start_floor(host: str, port: int) -> tuple[subprocess.Popen[str], int]:
    """The floor proxy in front of HOST:PORT, and the port it listens on."""
    proxy = subprocess.Popen(
        [sys.executable, FLOOR_PROXY, "--upstream", f"{host}:{port}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proxy.stdout is not None
    line = proxy.stdout.readline()
    if not line.startswith("listening on "):
        proxy.kill()
        proxy.wait()
        raise RuntimeError(f"the floor proxy did not start: {line!r}")
    return proxy, int(line.rsplit(":", 1)[1])


def _targets(name: str, emulator_port: int) -> dict[str, Target]:
    client = docker.from_env()
    (container,) = client.containers.list(filters={"label": f"smlocal.endpoint={name}"})
    net = container.attrs["NetworkSettings"]
    bridge_ip = next(n["IPAddress"] for n in net["Networks"].values() if n.get("IPAddress"))
    published = int(net["Ports"]["8080/tcp"][0]["HostPort"])
    return {
        BRIDGE: (bridge_ip, 8080, "/invocations"),
        PUBLISHED: ("127.0.0.1", published, "/invocations"),
        API: ("127.0.0.1", emulator_port, f"/endpoints/{name}/invocations"),
    }


def report_latency(
    paths: dict[str, Target], requests: int, rounds: int, pids: dict[str, int]
) -> None:
    """``pids``: the process behind each proxy path, whose CPU per request is shown."""
    for target in paths.values():  # warm up connections and code paths
        _latencies(*target, 200)
    samples: dict[str, list[float]] = {key: [] for key in paths}
    cpu = dict.fromkeys(pids, 0.0)
    per_round = max(1, requests // rounds)
    for _ in range(rounds):  # interleaved, so drift on a noisy machine hits every path alike
        for key, target in paths.items():
            before = _process_cpu_s(pids[key]) if key in pids else 0.0
            samples[key] += _latencies(*target, per_round)
            if key in pids:
                cpu[key] += _process_cpu_s(pids[key]) - before
    total = per_round * rounds
    api_us, floor_us = cpu[API] / total * 1e6, cpu[FLOOR] / total * 1e6
    print(f"latency, {total} sequential keep-alive requests per path")
    print(f"  serving process CPU per InvokeEndpoint (sequential): {api_us:.0f} µs")
    print(
        f"  {FLOOR} process CPU per request (sequential): {floor_us:.0f} µs"
        f"   (smlocal / floor: {api_us / floor_us:.2f}x)"
    )
    for key, values in samples.items():
        p50, p99 = _quantile(values, 0.5) * 1e3, _quantile(values, 0.99) * 1e3
        print(f"  {key:28s} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms")
    for proxy, refs in ((API, (BRIDGE, PUBLISHED, FLOOR)), (FLOOR, (BRIDGE,))):
        for ref in refs:
            add50 = (_quantile(samples[proxy], 0.5) - _quantile(samples[ref], 0.5)) * 1e3
            add99 = (_quantile(samples[proxy], 0.99) - _quantile(samples[ref], 0.99)) * 1e3
            what = f"{proxy} added vs {ref}"
            print(f"  {what:56s}: p50 {add50:+.3f} ms, p99 {add99:+.3f} ms")


def _run(
    target: Target, seconds: float, clients: int, pid: int | None, name: str
) -> tuple[float, float, float]:
    """Requests/s through ``target``; CPU seconds process ``pid`` and the container used."""
    process_before, container_before = _process_cpu_s(pid) if pid else 0.0, _container_cpu_s(name)
    rate = _throughput(*target, seconds, clients)
    process = _process_cpu_s(pid) - process_before if pid else 0.0
    return rate, process, _container_cpu_s(name) - container_before


def report_throughput(
    paths: dict[str, Target], seconds: float, clients: int, pids: dict[str, int], name: str
) -> None:
    print(f"throughput, {clients} client processes x {seconds:g} s")
    first, _, container_direct = _run(paths[BRIDGE], seconds, clients, None, name)
    floor, floor_used, container_floor = _run(paths[FLOOR], seconds, clients, pids[FLOOR], name)
    through, service_used, container_through = _run(paths[API], seconds, clients, pids[API], name)
    second, _, _ = _run(paths[BRIDGE], seconds, clients, None, name)
    direct = (first + second) / 2
    print(f"  {BRIDGE:28s} {first:8.0f} req/s, again {second:8.0f} req/s")
    print(f"  {FLOOR:28s} {floor:8.0f} req/s   {floor / direct:6.1%} of direct")
    print(f"  {API:28s} {through:8.0f} req/s   {through / direct:6.1%} of direct")
    # Docker's stats lag by up to a second, so the container's figures are approximate;
    # the serving process's and the floor proxy's come from /proc and are exact.
    served, direct_served = through * seconds, first * seconds
    per_request = service_used / served * 1e6
    floor_per = floor_used / (floor * seconds) * 1e6
    container_per = container_through / served * 1e6
    container_floor_per = container_floor / (floor * seconds) * 1e6
    container_direct_per = container_direct / direct_served * 1e6
    print(f"  CPU per request: serving process {per_request:.0f} µs, floor {floor_per:.0f} µs")
    print(
        f"  container CPU per request: {container_per:.0f} µs through smlocal, "
        f"{container_floor_per:.0f} µs through the floor, {container_direct_per:.0f} µs direct"
    )
    print(f"  serving process / floor proxy CPU per request: {per_request / floor_per:.2f}x")
    print(f"  serving process / container CPU per request: {per_request / container_per:.2f}")


def report_startup(image: str, startups: int) -> None:
    client = docker.from_env()
    direct, emulated = [], []
    for _ in range(startups):
        direct.append(_startup_direct(client, image))
        emulated.append(_startup_emulator(image))
    d, e = statistics.median(direct), statistics.median(emulated)
    print(f"time to healthy, median of {startups}")
    print(f"  docker run + 5 ms /ping poll  {d * 1e3:7.0f} ms")
    print(f"  smlocal Endpoint.start()      {e * 1e3:7.0f} ms   (InService)")
    print(f"  InService after the container's first 200 ping: {(e - d) * 1e3:+.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per path, for latency")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--startups", type=int, default=5)
    parser.add_argument("--image", default=IMAGE, help="default: the trivial echo fixture")
    parser.add_argument("--model", default=None, help="model for --image")
    args = parser.parse_args()
    model_args = ["--model", args.model] if args.model else []
    # A service of its own (serve --detach starts it), stopped at the end.
    os.environ["SMLOCAL_HOME"] = tempfile.mkdtemp(prefix="smlocal-bench-")
    served = subprocess.run(
        [SMLOCAL, "serve", args.image, *model_args, "--name", NAME, "--port", "0", "--detach"],
        capture_output=True,
        text=True,
        check=True,
    )
    emulator_port = int(served.stdout.strip().splitlines()[-1].rsplit(":", 1)[1])
    floor: subprocess.Popen[str] | None = None
    try:
        paths = _targets(NAME, emulator_port)
        floor, floor_port = _start_floor(*paths[BRIDGE][:2])
        paths[FLOOR] = ("127.0.0.1", floor_port, "/invocations")
        pids = {API: _service_pid(os.environ["SMLOCAL_HOME"]), FLOOR: floor.pid}
        report_latency(paths, args.requests, args.rounds, pids)
        report_throughput(paths, args.seconds, args.clients, pids, NAME)
    finally:
        if floor is not None:
            floor.terminate()
            floor.wait(timeout=10)
        subprocess.run([SMLOCAL, "stop", NAME], capture_output=True, check=False)
        subprocess.run([SMLOCAL, "server", "stop"], capture_output=True, check=False)
    if not args.model:  # the start-up comparison runs model-less images
        report_startup(args.image, args.startups)


if __name__ == "__main__":
    main()
