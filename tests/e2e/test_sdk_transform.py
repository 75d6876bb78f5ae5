"""The SageMaker Python SDK v2, unchanged, runs a batch transform on `smlocal server`, with a
moto server for S3 (the SDK's own virtualenv, as tests/e2e/test_sdk.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.aws_fakes import FAKE_CREDENTIALS, moto_server
from tests.conftest import REPO, SKLEARN_IMAGE, SKLEARN_MODEL
from tests.e2e.test_service_cli import assert_nothing_left

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
SMLOCAL = str(Path(sys.executable).parent / "smlocal")
BUCKET = "sdk-transform"


def test_sdk_v2_transformer_transform(docker_images: None, smlocal_home: Path) -> None:
    assert SDK_PYTHON.exists(), "the SDK's virtualenv is missing: run `make sdk-venv`"
    with moto_server() as moto:
        env = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto,
               "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}  # fmt: skip
        s3 = boto3.client(
            "s3",
            endpoint_url=moto,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        rows = [f"r{i},5.1,3.5,1.4,0.2" if i % 2 else f"r{i},6.7,3.0,5.2,2.3" for i in range(40)]
        s3.put_object(Bucket=BUCKET, Key="sdk-in/rows.csv", Body="\n".join(rows) + "\n")
        started = subprocess.run(
            [SMLOCAL, "server", "--port", "0", "--detach"],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        try:
            result = subprocess.run(
                [str(SDK_PYTHON), str(REPO / "tests" / "e2e" / "sdk" / "sdk_v2_transform.py"),
                 url, SKLEARN_IMAGE, str(SKLEARN_MODEL), BUCKET],
                capture_output=True, text=True, timeout=300, env=env, check=False,
            )  # fmt: skip
        finally:
            subprocess.run(
                [SMLOCAL, "server", "stop"], capture_output=True, timeout=120, check=False, env=env
            )
        assert_nothing_left(smlocal_home)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["sdk"].startswith("2.")
    assert seen["status"] == "Completed"
    expected = [f"r{i},{'setosa' if i % 2 else 'virginica'}" for i in range(40)]
    assert seen["output"].splitlines() == expected
