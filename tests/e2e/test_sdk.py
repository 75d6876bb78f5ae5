"""The SageMaker Python SDK v2, unchanged, deploys to and predicts from `smlocal server`.

The SDK lives in its own virtualenv (`make sdk-venv`, part of `make test`): it pins boto3,
numpy and pandas versions of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, SKLEARN_IMAGE, SKLEARN_MODEL
from tests.e2e.test_service_cli import assert_nothing_left

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
SMLOCAL = str(Path(sys.executable).parent / "smlocal")


@pytest.fixture
def service(smlocal_home: Path) -> Iterator[str]:
    started = subprocess.run(
        [SMLOCAL, "server", "--port", "0", "--detach"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([SMLOCAL, "server", "stop"], capture_output=True, timeout=120, check=False)
        assert_nothing_left(smlocal_home)


def test_sdk_v2_model_deploy_predict_delete(service: str) -> None:
    assert SDK_PYTHON.exists(), "the SDK's virtualenv is missing: run `make sdk-venv`"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }
    result = subprocess.run(
        [str(SDK_PYTHON), str(REPO / "tests" / "e2e" / "sdk" / "sdk_v2_flow.py"), service,
         SKLEARN_IMAGE, str(SKLEARN_MODEL)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["sdk"].startswith("2.")
    assert seen["json"]["predictions"][0]["predicted_class"] == "setosa"
    assert seen["csv"]["predictions"][0]["predicted_class"] == "virginica"
    listed = subprocess.run(
        [str(SDK_PYTHON), "-c",
         "import boto3,sys; sm=boto3.client('sagemaker', endpoint_url=sys.argv[1], "
         "region_name='us-east-1'); sm.get_waiter('endpoint_deleted').wait(EndpointName="
         "'sdk-iris', WaiterConfig={'Delay': 0.5, 'MaxAttempts': 120}); "
         "print(len(sm.list_endpoints()['Endpoints']))", service],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert listed.stdout.strip() == "0", listed.stderr
