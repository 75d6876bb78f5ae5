"""Benchmark: batch transform throughput on the local service against InvokeEndpoint loops.

Prints, for the reference sklearn image (or ``--image``/``--model``), in ONE run (same-run
figures only; these machines are noisy), in records per second:

* a plain sequential loop of InvokeEndpoint calls, one CSV record each (the baseline the goal
  names), on an endpoint of the same image and model;
* the same loop sending MultiRecord-sized bodies (as many records as fit in
  ``--max-payload-mb``), still one at a time: what batching alone gives;
* a transform job over ``--records`` CSV lines in ``--objects`` S3 objects (a moto server),
  MultiRecord, MaxConcurrentTransforms ``--concurrency``: end to end (CreateTransformJob until
  Completed, the container's start included) and while it transformed (TransformStartTime to
  TransformEndTime).

Goal (issue 13): transform >= 1.5x the sequential loop with MaxConcurrentTransforms 2 and
MultiRecord on a 2-core machine.

Run: .venv/bin/python benchmarks/transform.py [--records 200000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
BUCKET = "bench-transform"
FAKE = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _lines(count: int) -> list[str]:
    return [f"5.{i % 9},3.{i % 7},1.{i % 5},0.{i % 3}" for i in range(count)]


def _loop(rt: Any, bodies: list[str]) -> float:
    """Records per second of a sequential InvokeEndpoint loop over ``bodies``."""
    records = sum(body.count("\n") for body in bodies)
    started = time.perf_counter()
    for body in bodies:
        rt.invoke_endpoint(
            EndpointName="bench-transform", Body=body, ContentType="text/csv", Accept="text/csv"
        )["Body"].read()
    return records / (time.perf_counter() - started)


def _batches(lines: list[str], limit: int) -> list[str]:
    bodies: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > limit:
            bodies.append("".join(current))
            current, size = [], 0
        current.append(line + "\n")
        size += len(line) + 1
    return [*bodies, "".join(current)] if current else bodies


def _transform(sm: Any, name: str, args: argparse.Namespace) -> tuple[float, float]:
    started = time.perf_counter()
    sm.create_transform_job(
        TransformJobName=name,
        ModelName="bench-transform",
        BatchStrategy="MultiRecord",
        MaxConcurrentTransforms=args.concurrency,
        MaxPayloadInMB=args.max_payload_mb,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/in/"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{BUCKET}/{name}",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": args.instance_type, "InstanceCount": 1},
    )
    while True:
        described = sm.describe_transform_job(TransformJobName=name)
        if described["TransformJobStatus"] != "InProgress":
            break
        time.sleep(0.05)
    total = time.perf_counter() - started
    if described["TransformJobStatus"] != "Completed":
        raise SystemExit(
            f"{name}: {described['TransformJobStatus']}: {described.get('FailureReason')}"
        )
    working = (described["TransformEndTime"] - described["TransformStartTime"]).total_seconds()
    return args.records / total, args.records / working


def main() -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="smlocal/sklearn-iris:latest")
    parser.add_argument(
        "--model", default=str(REPO / "containers" / "sklearn" / "build" / "model.tar.gz")
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--loop-records", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-payload-mb", type=int, default=1)
    parser.add_argument("--instance-type", default="ml.m5.large")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    from smlocal.emulator.docker_backend import DockerBackend
    from smlocal.emulator.endpoint import MonitorSettings
    from smlocal.emulator.service.background import service_in_background
    from smlocal.emulator.state import StateDir

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update({**FAKE, "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}"})
    s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
    s3.create_bucket(Bucket=BUCKET)
    lines = _lines(args.records)
    share = -(-len(lines) // args.objects)
    for number in range(args.objects):
        part = lines[number * share : (number + 1) * share]
        s3.put_object(Bucket=BUCKET, Key=f"in/part-{number}.csv", Body="\n".join(part) + "\n")

    backend = DockerBackend()
    settings = MonitorSettings(host_cpus=backend.host_cpus(), host_ip="127.0.0.1")
    import tempfile

    plain = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    with (
        tempfile.TemporaryDirectory() as home,
        service_in_background(backend, state=StateDir(Path(home)), settings=settings) as url,
    ):
        sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", config=plain)
        rt = boto3.client(
            "sagemaker-runtime", endpoint_url=url, region_name="us-east-1", config=plain
        )
        sm.create_model(
            ModelName="bench-transform",
            PrimaryContainer={"Image": args.image, "ModelDataUrl": args.model},
        )
        sm.create_endpoint_config(
            EndpointConfigName="bench-transform",
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": "bench-transform",
                 "InstanceType": args.instance_type, "InitialInstanceCount": 1}
            ],
        )  # fmt: skip
        sm.create_endpoint(EndpointName="bench-transform", EndpointConfigName="bench-transform")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="bench-transform", WaiterConfig={"Delay": 1, "MaxAttempts": 600}
        )
        single = [line + "\n" for line in lines[: args.loop_records]]
        batched = _batches(lines, args.max_payload_mb * 1024 * 1024)
        _loop(rt, single[:50])  # warm the keep-alive pool and the workers
        loops, batch_loops, ends, works = [], [], [], []
        for round_ in range(args.rounds):
            loops.append(_loop(rt, single))
            batch_loops.append(_loop(rt, batched))
            end, work = _transform(sm, f"bench-{round_}", args)
            ends.append(end)
            works.append(work)
            print(
                f"round {round_ + 1}: loop {loops[-1]:,.0f} rec/s, batched loop "
                f"{batch_loops[-1]:,.0f} rec/s, transform {end:,.0f} rec/s end to end "
                f"({work:,.0f} rec/s while transforming)",
                flush=True,
            )
        sm.delete_endpoint(EndpointName="bench-transform")
    moto.stop()
    loop, batch_loop = statistics.median(loops), statistics.median(batch_loops)
    end, work = statistics.median(ends), statistics.median(works)
    print(f"\n{args.records:,} CSV records in {args.objects} S3 objects (moto), {args.image}, "
          f"{args.instance_type}, MultiRecord up to {args.max_payload_mb} MB, "
          f"MaxConcurrentTransforms {args.concurrency}; medians of {args.rounds} "
          "round(s):")  # fmt: skip
    print(f"  sequential InvokeEndpoint loop, 1 record each: {loop:10,.0f} records/s")
    print(f"  sequential InvokeEndpoint loop, batched bodies: {batch_loop:9,.0f} records/s")
    print(f"  transform job, end to end (container start incl.): {end:6,.0f} records/s "
          f"= {end / loop:.1f}x the loop (goal >= 1.5x)")  # fmt: skip
    print(f"  transform job, while transforming: {work:21,.0f} records/s "
          f"= {work / batch_loop:.2f}x the batched loop")  # fmt: skip
    return 0 if end / loop >= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
