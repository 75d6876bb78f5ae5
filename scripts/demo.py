"""`make demo`: serve the reference sklearn image with smlocal and invoke it through boto3.

The same steps a user takes: `smlocal serve --detach` (which starts the local service when
none runs), a plain boto3 ``sagemaker-runtime`` client pointed at it, `smlocal stop`, and
`smlocal server stop` for a service the demo started.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
from botocore import UNSIGNED
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
SMLOCAL = str(Path(sys.executable).parent / "smlocal")
NAME = "sklearn-iris-demo"
PAYLOAD = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def main() -> int:
    already = subprocess.run([SMLOCAL, "server", "status"], capture_output=True, check=False)
    serve = subprocess.run(
        [
            SMLOCAL,
            "serve",
            "smlocal/sklearn-iris:latest",
            "--model",
            str(REPO / "containers/sklearn/build/model.tar.gz"),
            "--name",
            NAME,
            "--port",
            "0",
            "--detach",
        ],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if serve.returncode != 0:
        return serve.returncode
    url = serve.stdout.strip().splitlines()[-1]
    try:
        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=url,
            region_name="us-east-1",
            config=Config(signature_version=UNSIGNED),
        )
        print(f"\n$ boto3 invoke_endpoint(EndpointName={NAME!r}, Body={json.dumps(PAYLOAD)})")
        response = runtime.invoke_endpoint(
            EndpointName=NAME, Body=json.dumps(PAYLOAD), ContentType="application/json"
        )
        print(json.dumps(json.loads(response["Body"].read()), indent=2))
        print(f"(variant {response['InvokedProductionVariant']}, {response['ContentType']})\n")
    finally:
        subprocess.run([SMLOCAL, "stop", NAME], check=False)
        if already.returncode != 0:
            subprocess.run([SMLOCAL, "server", "stop"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
