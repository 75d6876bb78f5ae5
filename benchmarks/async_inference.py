"""Benchmark: asynchronous inference on the local service against real-time, same container.

Prints, for the reference sklearn image (or ``--image``/``--model``), in ONE run (same-run
figures only; these machines are noisy): real-time throughput (InvokeEndpoint from
``--clients`` threads through boto3) and async throughput (InvokeEndpointAsync of inputs
already in S3, from the first submission until every answer object exists in S3), both in
requests per minute, through a moto server for S3; MaxConcurrentInvocationsPerInstance is
``--clients`` so both keep the same number of requests in flight; and what the S3 stand-in
alone sustains for one async request's I/O (get + put), the ceiling of any async path through
it. Alternates them over ``--rounds``.

Goal (issue 12): async >= 80% of real-time throughput for the sklearn image.

Run: .venv/bin/python benchmarks/async_inference.py [--requests 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
SMLOCAL = os.path.join(os.path.dirname(sys.executable), "smlocal")
BUCKET = "bench-async"
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
FAKE = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _realtime(rt: Any, count: int, clients: int) -> float:
    def call(_: int) -> None:
        rt.invoke_endpoint(EndpointName="bench-rt", Body=BODY, ContentType="application/json")[
            "Body"
        ].read()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(call, range(count)))
    return count / (time.perf_counter() - started) * 60


def _s3_ceiling(s3: Any, count: int, clients: int, round_: int) -> float:
    """What the S3 stand-in alone sustains for one async request's I/O (get the input, put
    the answer), with the same concurrency: the most any async path through it can do."""

    def one(index: int) -> None:
        s3.get_object(Bucket=BUCKET, Key=f"in/{index}.json")["Body"].read()
        s3.put_object(Bucket=BUCKET, Key=f"ceiling/{round_}/{index}.out", Body=BODY)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(count)))
    return count / (time.perf_counter() - started) * 60


def _async(rt: Any, s3: Any, count: int, clients: int, round_: int) -> float:
    prefix = f"out/{round_}"

    def submit(index: int) -> str:
        answer = rt.invoke_endpoint_async(
            EndpointName="bench-async",
            InputLocation=f"s3://{BUCKET}/in/{index}.json",
            ContentType="application/json",
        )
        return str(answer["OutputLocation"])

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        outputs = set(pool.map(submit, range(count)))
    keys = {o.removeprefix(f"s3://{BUCKET}/") for o in outputs}
    while True:
        found: set[str] = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            found |= {item["Key"] for item in page.get("Contents", [])}
        if keys <= found:
            break
        time.sleep(0.2)
    return count / (time.perf_counter() - started) * 60


def _wait_for(url: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()  # noqa: S310 - loopback moto
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--image", default="smlocal/sklearn-iris:latest")
    parser.add_argument("--model", default=str(REPO / "containers/sklearn/build/model.tar.gz"))
    args = parser.parse_args()
    # moto in a process of its own: in this one it would share the GIL with the clients.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        moto_port = probe.getsockname()[1]
    moto = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1",
         "-p", str(moto_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    moto_url = f"http://127.0.0.1:{moto_port}"
    _wait_for(moto_url)
    env = {
        **os.environ,
        **FAKE,
        "AWS_ENDPOINT_URL": moto_url,
        "SMLOCAL_HOME": tempfile.mkdtemp(prefix="smlocal-bench-"),
    }
    started = subprocess.run(
        [SMLOCAL, "server", "--port", "0", "--detach"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    url = started.stdout.strip().splitlines()[-1]
    try:
        plain = Config(
            signature_version=UNSIGNED,
            retries={"total_max_attempts": 1},
            max_pool_connections=args.clients * 2,
        )
        sm: Any = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", config=plain)
        rt: Any = boto3.client(
            "sagemaker-runtime", endpoint_url=url, region_name="us-east-1", config=plain
        )
        s3: Any = boto3.client(
            "s3", endpoint_url=moto_url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106
            config=Config(max_pool_connections=args.clients * 2),
        )  # fmt: skip
        s3.create_bucket(Bucket=BUCKET)
        for index in range(args.requests):
            s3.put_object(Bucket=BUCKET, Key=f"in/{index}.json", Body=BODY)
        sm.create_model(
            ModelName="bench", PrimaryContainer={"Image": args.image, "ModelDataUrl": args.model}
        )
        variant = {"VariantName": "A", "ModelName": "bench", "InstanceType": "ml.m5.large",
                   "InitialInstanceCount": 1}  # fmt: skip
        sm.create_endpoint_config(EndpointConfigName="bench-rt", ProductionVariants=[variant])
        for round_ in range(args.rounds):
            sm.create_endpoint_config(
                EndpointConfigName=f"bench-async-{round_}",
                ProductionVariants=[variant],
                AsyncInferenceConfig={
                    "ClientConfig": {"MaxConcurrentInvocationsPerInstance": args.clients},
                    "OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/out/{round_}"},
                },
            )
        sm.create_endpoint(EndpointName="bench-rt", EndpointConfigName="bench-rt")
        sm.create_endpoint(EndpointName="bench-async", EndpointConfigName="bench-async-0")
        waiter = sm.get_waiter("endpoint_in_service")
        for name in ("bench-rt", "bench-async"):
            waiter.wait(EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240})
        _realtime(rt, 50, args.clients)  # warm both paths up
        realtime, asynchronous, ceiling = [], [], []
        for round_ in range(args.rounds):
            if round_:
                sm.update_endpoint(
                    EndpointName="bench-async", EndpointConfigName=f"bench-async-{round_}"
                )
                waiter.wait(
                    EndpointName="bench-async", WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
                )
            realtime.append(_realtime(rt, args.requests, args.clients))
            asynchronous.append(_async(rt, s3, args.requests, args.clients, round_))
            ceiling.append(_s3_ceiling(s3, args.requests, args.clients, round_))
        r, a = statistics.median(realtime), statistics.median(asynchronous)
        c = statistics.median(ceiling)
        print(f"real-time InvokeEndpoint, {args.clients} in flight: {r:,.0f} requests/min")
        print(f"async through moto S3, {args.clients} per instance: {a:,.0f} requests/min")
        print(f"the S3 stand-in alone, get + put, same concurrency: {c:,.0f} pairs/min")
        print(f"async / real-time: {a / r:.0%} (goal >= 80%); async / S3 ceiling: {a / c:.0%}")
    finally:
        subprocess.run([SMLOCAL, "server", "stop"], env=env, check=False)
        moto.terminate()
        moto.wait(timeout=30)


if __name__ == "__main__":
    main()
