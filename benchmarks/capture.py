"""Benchmark: what data capture (DataCaptureConfig, 100 % sampling) adds to InvokeEndpoint.

In ONE run of `smlocal server` (its own process) with two endpoints on the trivial
``smlocal-fixture/echo`` container, one without capture and one capturing every request and
answer (InputAndOutput, CSV/JSON types, to a local directory or, with ``--s3``, to a moto
server), interleaved in rounds of sequential keep-alive requests:

1. latency p50/p99 of each, and capture's added latency as a ratio (goal: <= 5 % at p50);
2. CPU per request of the service process (utime + stime from /proc/PID/stat over each batch
   plus the writer's flush interval, so the records' encoding and writing are counted where
   they happen: in the same process, off the request path);
3. that every captured request was written (records counted in the files afterwards).
4. in this process: one captured request's cost on the request path (``offer_answer``) and
   in the writer thread (encoding and writing), which the service-level CPU figure, at
   /proc's 10 ms resolution and on a shared machine, can only bound.

Run: .venv/bin/python benchmarks/capture.py [--requests 2000] [--rounds 5] [--s3]
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
from pathlib import Path
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from runtime_api import BODY, _latencies, _quantile

from smlocal.emulator.capture import CaptureSpec
from smlocal.emulator.capture_writer import FLUSH_INTERVAL_S, CaptureWriter, LocalSink

IMAGE = "smlocal-fixture/echo:latest"
SMLOCAL = os.path.join(os.path.dirname(sys.executable), "smlocal")
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime (all threads)


def _deploy(sm: Any, name: str, capture: dict[str, Any] | None) -> None:
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "bench-m", "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 1}
        ],
        **({"DataCaptureConfig": capture} if capture else {}),
    )  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
    )


def _measure(pid: int, port: int, requests: int, rounds: int) -> int:
    """Interleaved rounds; prints latency and CPU per request; returns requests sent."""
    for name in ("capture-off", "capture-on"):  # warm both pools
        _latencies("127.0.0.1", port, f"/endpoints/{name}/invocations", 200)
    samples: dict[str, list[float]] = {"capture-off": [], "capture-on": []}
    cpu: dict[str, list[float]] = {"capture-off": [], "capture-on": []}  # s/request, per round
    for _ in range(rounds):
        for name in samples:
            before = _cpu_s(pid)
            samples[name] += _latencies(
                "127.0.0.1", port, f"/endpoints/{name}/invocations", requests
            )
            time.sleep(FLUSH_INTERVAL_S + 0.5)  # the writer's share lands in this batch
            cpu[name].append((_cpu_s(pid) - before) / requests)
    off = samples["capture-off"]
    base50, base99 = _quantile(off, 0.5), _quantile(off, 0.99)
    for name, values in samples.items():
        p50, p99 = _quantile(values, 0.5), _quantile(values, 0.99)
        print(
            f"{name:12} p50 {p50 * 1000:.3f} ms ({p50 / base50 - 1:+.1%})  "
            f"p99 {p99 * 1000:.3f} ms ({p99 / base99 - 1:+.1%})  "
            f"CPU {statistics.median(cpu[name]) * 1e6:.1f} us/request (median of rounds, "
            "incl. idle over the flush waits)"
        )
    extra = [
        (on - off) * 1e6 for on, off in zip(cpu["capture-on"], cpu["capture-off"], strict=True)
    ]
    print(
        f"capture's CPU: {statistics.median(extra):+.1f} us/request in the service process "
        f"(median of the rounds' differences; rounds: {', '.join(f'{e:+.0f}' for e in extra)})"
    )
    return requests * rounds + 200


def _count_records(destination: str, s3: Any) -> tuple[int, int]:
    """(records, files) written below ``destination``."""
    if s3 is None:
        files = list(Path(destination).rglob("*.jsonl"))
        return sum(len(f.read_text().splitlines()) for f in files), len(files)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="bench")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    bodies = [s3.get_object(Bucket="bench", Key=k)["Body"].read() for k in keys]
    return sum(len(b.splitlines()) for b in bodies), len(keys)


def _in_process_costs(count: int = 20000) -> None:
    """What one captured request costs on the request path (``offer_answer``: a sampling draw
    and an append) and in the writer thread (encoding and writing), measured in this process."""
    spec = CaptureSpec(sampling_percentage=100, destination="unused",
                       csv_types=("text/csv",), json_types=("application/json",))  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        writer = CaptureWriter(spec, "bench", LocalSink(folder), flush_interval_s=3600,
                               flush_records=10**9)  # fmt: skip
        headers = {"content-type": "application/json"}
        started = time.perf_counter()
        for _ in range(count):
            writer.offer_answer("AllTraffic", headers, BODY, "application/json", BODY)
        on_path = (time.perf_counter() - started) / count
        started = time.process_time()
        writer.close()
        off_path = (time.process_time() - started) / count
    print(f"per captured request: {on_path * 1e6:.1f} us on the request path (offer), "
          f"{off_path * 1e6:.1f} us CPU in the writer thread (encode + write)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--s3", action="store_true", help="capture to a moto server's S3")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="smlocal-bench-capture-")
    env = {**os.environ, "SMLOCAL_HOME": home}
    moto, s3 = None, None
    destination = str(Path(home) / "capture")
    if args.s3:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.aws_fakes import FAKE_CREDENTIALS, moto_server

        moto = moto_server()
        moto_url = moto.__enter__()
        env.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL_S3=moto_url)
        s3 = boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        ).client("s3", endpoint_url=moto_url, region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        destination = "s3://bench/capture"
    started = subprocess.run(
        [SMLOCAL, "server", "--port", "0", "--detach"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    url = started.stdout.strip().splitlines()[-1]
    pid = json.loads((Path(home) / "service" / "server.json").read_text())["pid"]
    try:
        config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", config=config)
        sm.create_model(ModelName="bench-m", PrimaryContainer={"Image": IMAGE})
        _deploy(sm, "capture-off", None)
        _deploy(sm, "capture-on", {
            "InitialSamplingPercentage": 100, "DestinationS3Uri": destination,
            "CaptureOptions": [{"CaptureMode": "InputAndOutput"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                         "JsonContentTypes": ["application/json"]},
        })  # fmt: skip
        sent = _measure(pid, int(url.rsplit(":", 1)[1]), args.requests, args.rounds)
        sm.delete_endpoint(EndpointName="capture-on")  # flushes what is still buffered
        sm.get_waiter("endpoint_deleted").wait(
            EndpointName="capture-on", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        records, files = _count_records(destination, s3)
        print(f"captured {records} of {sent} requests in {files} files ({destination})")
        _in_process_costs()
    finally:
        subprocess.run([SMLOCAL, "server", "stop"], env=env, check=False)
        if moto is not None:
            moto.__exit__(None, None, None)


if __name__ == "__main__":
    main()
