"""Benchmark: what a multi-model endpoint's model cache costs and saves, on the local service.

Prints, for the reference image ``smlocal/multi-model-iris:latest`` (``make multi-model-image``)
and its three models in a moto S3 bucket, in ONE run (same-run figures only; these machines
are noisy):

1. each model's first InvokeEndpoint (S3 download + extraction + ``POST /models`` + invoke);
2. cache hits: InvokeEndpoint p50 through boto3, against the same request sent straight to the
   container's ``POST /models/{name}/invoke`` (what the MME path adds over a direct call);
3. a container holding one model (``MME_MAX_MODELS=1``) asked for the three in turn: every
   request pays 507 -> unload -> load (files already on disk).

Run: .venv/bin/python benchmarks/multi_model.py [--requests 200]
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import docker
from botocore import UNSIGNED
from botocore.config import Config
from moto.server import ThreadedMotoServer

from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.multi_model_config import model_name_for
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir

IMAGE = "smlocal/multi-model-iris:latest"
MODELS = Path(__file__).resolve().parent.parent / "containers" / "multi-model" / "build" / "models"
BUCKET = "bench-mme"
BODY = json.dumps({"instances": [[6.3, 2.8, 5.1, 1.5]]}).encode()
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "us-east-1"}


def _deploy(sm: Any, name: str, env: dict[str, str]) -> None:
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::000000000000:role/x",
        PrimaryContainer={
            "Image": IMAGE,
            "Mode": "MultiModel",
            "ModelDataUrl": f"s3://{BUCKET}/models/",
            "Environment": env,
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "A", "ModelName": name, "InstanceType": "ml.m5.large"}],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.25, "MaxAttempts": 240}
    )


def _invoke(runtime: Any, name: str, target: str) -> float:
    started = time.perf_counter()
    answer = runtime.invoke_endpoint(
        EndpointName=name, TargetModel=target, ContentType="application/json", Body=BODY
    )
    answer["Body"].read()
    return time.perf_counter() - started


def _direct(port: int, target: str, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request(
            "POST",
            f"/models/{model_name_for(target)}/invoke",
            body=BODY,
            headers={"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Model": target},
        )
        connection.getresponse().read()
        times.append(time.perf_counter() - started)
    connection.close()
    return times


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    targets = sorted(p.name for p in MODELS.glob("*.tar.gz"))
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update(CREDENTIALS, AWS_ENDPOINT_URL_S3=f"http://{host}:{port}")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for target in targets:
        s3.upload_file(str(MODELS / target), BUCKET, f"models/{target}")
    settings = MonitorSettings(ping_interval_s=5, stop_grace_s=2)
    try:
        with (
            tempfile.TemporaryDirectory() as home,
            service_in_background(
                DockerBackend(), state=StateDir(Path(home)), settings=settings
            ) as url,
        ):
            config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
            kwargs: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1"}
            sm = boto3.client("sagemaker", config=config, **kwargs)
            runtime = boto3.client("sagemaker-runtime", config=config, **kwargs)
            _deploy(sm, "bench-mme", {})
            print(f"first request of each model ({len(targets)}: download + extract + load):")
            for target in targets:
                print(f"  {target:<18} {_ms(_invoke(runtime, 'bench-mme', target))}")
            hits = [_invoke(runtime, "bench-mme", targets[0]) for _ in range(args.requests)]
            (container,) = docker.from_env().containers.list(
                filters={"label": "smlocal.endpoint=bench-mme"}
            )
            published = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
            direct = _direct(int(published), targets[0], args.requests)
            hit_p50, direct_p50 = statistics.median(hits), statistics.median(direct)
            print(f"cache hit, {args.requests} InvokeEndpoint (boto3) p50: {_ms(hit_p50)}")
            print(f"the same, straight to the container p50:          {_ms(direct_p50)}")
            print(f"  the MME path adds {_ms(hit_p50 - direct_p50)} at p50 (boto3 included)")
            _deploy(sm, "bench-mme-one", {"MME_MAX_MODELS": "1"})
            for target in targets:
                _invoke(runtime, "bench-mme-one", target)  # files on disk; one model loaded
            turns = [
                _invoke(runtime, "bench-mme-one", targets[i % len(targets)])
                for i in range(args.requests // 4)
            ]
            print(
                f"one-model container, targets in turn ({len(turns)} requests, each "
                f"507 -> unload -> load) p50: {_ms(statistics.median(turns))}"
            )
            for name in ("bench-mme", "bench-mme-one"):
                sm.delete_endpoint(EndpointName=name)
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
