"""Benchmark: the requests per second ONE Locust process can generate on this machine.

Runs the smlocal locustfile (FastHttpUser) against the trivial ``smlocal-fixture/echo``
container called DIRECTLY on its published loopback port (no emulator in between), for a few
user counts, and prints Locust's own Requests/s and percentiles plus the CPU the Locust
process used (children's rusage / wall time; 1.0 = one full core). When a load test's
MAX_RPS comes near this ceiling, it measures the generator, not the model: use --workers.

Run: .venv/bin/python benchmarks/generator_ceiling.py [--seconds 8] [--users 1,8,32]
     [--workers 0]
Needs the image (`make fixtures`). Loopback only; bounded by --seconds per user count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker

from smlocal.loadtests.runner import LocustTarget, generator_overloaded, run_locust

__all__ = ["main"]

IMAGE = "smlocal-fixture/echo:latest"
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()


@contextlib.contextmanager
def _echo_container() -> Iterator[str]:
    client = docker.from_env()
    container = client.containers.run(
        IMAGE,
        "serve",
        detach=True,
        ports={"8080/tcp": ("127.0.0.1", None)},
        labels={"smlocal.session": "bench-generator-ceiling"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            container.reload()
            bindings = container.attrs["NetworkSettings"]["Ports"].get("8080/tcp")
            if bindings or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        url = f"http://127.0.0.1:{bindings[0]['HostPort']}"
        time.sleep(1.0)  # the server opens its socket right after start
        yield url
    finally:
        container.remove(force=True)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--users", default="1,8,32")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, _echo_container() as url:
        payload = Path(tmp) / "payload.json"
        payload.write_bytes(BODY)
        target = LocustTarget(host=url, payload=payload, path="/invocations", workers=args.workers)
        print(f"one Locust {'process' if not args.workers else f'master + {args.workers} workers'}"
              f" -> echo container at {url}/invocations, {args.seconds:g} s per step")  # fmt: skip
        print(f"{'users':>6} {'req/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
              f"{'locust CPU':>10} {'failures':>8}")  # fmt: skip
        for users in (int(u) for u in args.users.split(",")):
            cpu, wall = _children_cpu_s(), time.monotonic()
            prefix = Path(tmp) / f"u{users}"
            step = run_locust(target, users, args.seconds, prefix)
            cores = (_children_cpu_s() - cpu) / (time.monotonic() - wall)
            flag = " (Locust warned: CPU limit)" if generator_overloaded(prefix) else ""
            print(f"{users:>6} {step.rps:>9.1f} {step.p50_ms or 0:>7g} {step.p95_ms or 0:>7g} "
                  f"{step.p99_ms or 0:>7g} {cores:>9.2f}c {step.failures:>8}{flag}")  # fmt: skip


if __name__ == "__main__":
    main()
