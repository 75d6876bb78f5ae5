"""The SageMaker Python SDK v2's MultiDataModel, unchanged, deploys a multi-model endpoint to
`smlocal server` (models uploaded to moto S3 by the SDK itself) and predicts per target model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.conftest import REPO
from tests.e2e.test_service_cli import assert_nothing_left

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
SMLOCAL = str(Path(sys.executable).parent / "smlocal")
IMAGE = "smlocal/multi-model-iris:latest"
MODELS = REPO / "containers" / "multi-model" / "build" / "models"
BUCKET = "sdk-mme"


def test_sdk_v2_multi_data_model(smlocal_home: Path) -> None:
    assert SDK_PYTHON.exists(), "the SDK's virtualenv is missing: run `make sdk-venv`"
    assert (MODELS / "logistic.tar.gz").is_file(), "run `make multi-model-image`"
    with moto_server() as moto:
        env = {
            **os.environ,
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL_S3": moto,
            "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=moto,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        started = subprocess.run(
            [SMLOCAL, "server", "--port", "0", "--detach"],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        try:
            result = subprocess.run(
                [str(SDK_PYTHON), str(REPO / "tests" / "e2e" / "sdk" / "sdk_v2_multi_model.py"),
                 url, IMAGE, f"s3://{BUCKET}/mme/", str(MODELS)],
                capture_output=True, text=True, timeout=300, env=env, check=False,
            )  # fmt: skip
        finally:
            subprocess.run(
                [SMLOCAL, "server", "stop"], capture_output=True, timeout=120, env=env, check=False
            )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["answers"] == {"logistic.tar.gz": "logistic", "stump.tar.gz": "stump"}
    assert seen["listed"] == ["logistic.tar.gz", "sepal-knn.tar.gz", "stump.tar.gz"]
    assert seen["mode"] == "MultiModel"
    assert_nothing_left(smlocal_home)
