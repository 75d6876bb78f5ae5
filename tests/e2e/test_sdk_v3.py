"""The SageMaker Python SDK v3 (sagemaker-core's resources) reads and invokes an endpoint of
`smlocal server` with nothing but the endpoint-URL environment variables pointing at it.

The SDK lives in its own virtualenv (`make sdk3-venv`, part of `make test`): it pins boto3,
numpy and pandas versions of its own. The model, endpoint config and endpoint are made with
the project's boto3; the script run in the SDK's venv uses only SDK v3 calls:
`Endpoint.get`, `wait_for_status`, its attributes, `invoke`, `delete` and `wait_for_delete`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from tests.conftest import REPO, SKLEARN_IMAGE, SKLEARN_MODEL
from tests.e2e.test_sdk import service  # noqa: F401  (the fixture: the service, detached)

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SDK3_PYTHON = REPO / ".venv-sdk3" / "bin" / "python"
NAME = "sdk3-iris"

SDK3_SCRIPT = """
import json, sys
from importlib.metadata import version

import boto3
from sagemaker.core.resources import Endpoint

name, answer_file = sys.argv[1], sys.argv[2]
session = boto3.Session(region_name="us-east-1")
endpoint = Endpoint.get(endpoint_name=name, session=session, region="us-east-1")
first_status = endpoint.endpoint_status
endpoint.wait_for_status("InService", poll=1, timeout=240)
answers = {}
for content_type, body in (
    ("application/json", b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'),
    ("text/csv", b"6.7,3.0,5.2,2.3"),
):
    out = endpoint.invoke(body=body, content_type=content_type, accept="application/json")
    raw = out.body.read() if hasattr(out.body, "read") else out.body
    answers[content_type] = {
        "body": json.loads(raw),
        "content_type": out.content_type,
        "variant": out.invoked_production_variant,
    }
seen = {
    "sdk": version("sagemaker"),
    "core": version("sagemaker-core"),
    "first_status": first_status,
    "status": endpoint.endpoint_status,
    "name": endpoint.endpoint_name,
    "arn": endpoint.endpoint_arn,
    "config": endpoint.endpoint_config_name,
    "variants": [
        [v.variant_name, v.current_instance_count] for v in endpoint.production_variants
    ],
    "answers": answers,
}
endpoint.delete()
endpoint.wait_for_delete(poll=1, timeout=120)
# wait_for_status draws a rich panel on stdout: what was seen goes to a file of its own
with open(answer_file, "w") as f:
    json.dump(seen, f)
"""


def make_endpoint(url: str) -> None:
    sm: Any = boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )
    sm.create_model(
        ModelName=NAME,
        ExecutionRoleArn="arn:aws:iam::000000000000:role/smlocal",
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": str(SKLEARN_MODEL)},
    )
    sm.create_endpoint_config(
        EndpointConfigName=NAME,
        ProductionVariants=[
            {"VariantName": "A", "ModelName": NAME, "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 1},
        ],
    )  # fmt: skip
    sm.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)


def test_sdk_v3_endpoint_get_invoke_delete(service: str, tmp_path: Path) -> None:  # noqa: F811
    assert SDK3_PYTHON.exists(), "the SDK v3's virtualenv is missing: run `make sdk3-venv`"
    make_endpoint(service)
    script = tmp_path / "sdk_v3_flow.py"
    script.write_text(SDK3_SCRIPT)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_SAGEMAKER": service,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": service,
    }
    result = subprocess.run(
        [str(SDK3_PYTHON), str(script), NAME, str(tmp_path / "seen.json")],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["sdk"].startswith("3.")
    assert seen["first_status"] in {"Creating", "InService"}
    assert seen["status"] == "InService"
    assert seen["name"] == NAME
    assert seen["config"] == NAME
    assert seen["arn"].endswith(f":endpoint/{NAME}")
    assert seen["variants"] == [["A", 1]]
    as_json, as_csv = seen["answers"]["application/json"], seen["answers"]["text/csv"]
    assert as_json["body"]["predictions"][0]["predicted_class"] == "setosa"
    assert as_csv["body"]["predictions"][0]["predicted_class"] == "virginica"
    assert as_json["content_type"] == "application/json"
    assert as_json["variant"] == as_csv["variant"] == "A"
    sm: Any = boto3.client(
        "sagemaker", endpoint_url=service, region_name="us-east-1",
        config=Config(signature_version=UNSIGNED),
    )  # fmt: skip
    assert sm.list_endpoints()["Endpoints"] == []
