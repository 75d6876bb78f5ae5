"""Multi-model endpoints on Docker with the reference image and moto S3: boto3's TargetModel picks
the model, the second call is a cache hit, a container that holds one model still serves every
model in turn (507 -> unload -> load), /opt/ml/models is read-only, a missing artifact is
AWS's ValidationError, and nothing is left behind."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from smlocal.emulator.backend import LABEL_ENDPOINT
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.conftest import REPO

pytestmark = pytest.mark.docker

IMAGE = "smlocal/multi-model-iris:latest"
MODELS = REPO / "containers" / "multi-model" / "build" / "models"
BUCKET = "smlocal-mme"
WAIT = {"Delay": 0.25, "MaxAttempts": 240}
FLOWER = {"instances": [[6.3, 2.8, 5.1, 1.5]]}


@pytest.fixture(scope="module")
def mme_image() -> None:
    """The reference image and its models; `make test` built them already, so this is quick."""
    if not (MODELS / "logistic.tar.gz").is_file() or not DockerBackend().image_exists(IMAGE):
        target = ["make", "--no-print-directory", "-C", str(REPO), "multi-model-image"]
        subprocess.run(target, check=True)


class Service:
    def __init__(self, url: str) -> None:
        self.url = url
        config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        kwargs: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1"}
        self.sm = boto3.client("sagemaker", config=config, **kwargs)
        self.rt = boto3.client("sagemaker-runtime", config=config, **kwargs)

    def deploy(self, name: str, env: dict[str, str] | None = None) -> None:
        self.sm.create_model(
            ModelName=name,
            PrimaryContainer={
                "Image": IMAGE,
                "Mode": "MultiModel",
                "ModelDataUrl": f"s3://{BUCKET}/models/",
                "Environment": env or {},
            },
            ExecutionRoleArn="arn:aws:iam::000000000000:role/x",
        )
        self.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        self.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)

    def invoke(self, name: str, target: str) -> dict[str, Any]:
        answer = self.rt.invoke_endpoint(
            EndpointName=name,
            TargetModel=target,
            ContentType="application/json",
            Body=json.dumps(FLOWER),
        )
        result: dict[str, Any] = json.loads(answer["Body"].read())
        return result

    def metric(self, prefix: str) -> int:
        with urllib.request.urlopen(f"{self.url}/metrics") as response:
            text = response.read().decode()
        return sum(int(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


@pytest.fixture
def service(mme_image: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    with moto_server() as moto:
        for key, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto)
        s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for artifact in sorted(MODELS.glob("*.tar.gz")):
            s3.upload_file(str(artifact), BUCKET, f"models/{artifact.name}")
        settings = MonitorSettings(ping_interval_s=1, stop_grace_s=2)
        with service_in_background(
            DockerBackend(), state=StateDir(tmp_path), settings=settings
        ) as url:
            yield Service(url)


def _containers(name: str) -> list[Any]:
    return list(
        docker.from_env().containers.list(
            ignore_removed=True, all=True, filters={"label": f"{LABEL_ENDPOINT}={name}"}
        )
    )


def test_target_models_answer_from_s3_with_cache_hits(service: Service) -> None:
    service.deploy("mme-iris")
    first = service.invoke("mme-iris", "logistic.tar.gz")
    assert first["model_id"] == "logistic"
    assert first["target_model"] == "logistic.tar.gz"  # the header reached the container
    stump = service.invoke("mme-iris", "stump.tar.gz")
    assert stump["model_id"] == "stump"
    assert stump["predictions"] != first["predictions"]  # different models, different answers
    assert service.invoke("mme-iris", "logistic.tar.gz") == first
    assert service.metric('smlocal_model_cache_hit_sum{endpoint="mme-iris"') == 1
    assert service.metric('smlocal_model_cache_hit_count{endpoint="mme-iris"') == 3
    assert service.metric('smlocal_loaded_model_count{endpoint="mme-iris"') == 2
    assert (
        service.metric('smlocal_model_downloading_time_microseconds_count{endpoint="mme-iris"') == 2
    )
    # SageMaker's view of the container: the flag set, the models directory read-only.
    (container,) = _containers("mme-iris")
    env = container.attrs["Config"]["Env"]
    assert "SAGEMAKER_MULTI_MODEL=true" in env
    written = container.exec_run(["python3", "-c", "open('/opt/ml/models/x', 'w')"])
    assert written.exit_code != 0 and b"Read-only file system" in written.output
    # A TargetModel with no object under the prefix: AWS's ValidationError, naming bucket and key.
    with pytest.raises(ClientError) as caught:
        service.invoke("mme-iris", "missing.tar.gz")
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert error["Message"].startswith(
        f"Failed to download model data(bucket: {BUCKET}, key: models/missing.tar.gz)"
    )
    service.sm.delete_endpoint(EndpointName="mme-iris")
    service.sm.get_waiter("endpoint_deleted").wait(EndpointName="mme-iris", WaiterConfig=WAIT)
    assert _containers("mme-iris") == []


def test_a_container_that_holds_one_model_serves_them_all_in_turn(service: Service) -> None:
    service.deploy("mme-one", env={"MME_MAX_MODELS": "1"})
    targets = ["logistic.tar.gz", "stump.tar.gz", "sepal-knn.tar.gz", "logistic.tar.gz"]
    for target in targets:
        assert service.invoke("mme-one", target)["model_id"] == target.removesuffix(".tar.gz")
    # Each load after the first got 507 and made room by unloading the one model there.
    assert service.metric('smlocal_model_unloading_time_microseconds_count{endpoint="mme-one"') == 3
    assert service.metric('smlocal_loaded_model_count{endpoint="mme-one"') == 1
