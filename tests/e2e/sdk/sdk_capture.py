"""Run by tests/integration/test_capture_sklearn.py with the SageMaker Python SDK v2's own
virtualenv: the SDK's side of data capture, unchanged.

``config DEST``: the DataCaptureConfig the SDK sends (``DataCaptureConfig._to_request_dict``,
what ``Model.deploy(data_capture_config=...)`` and ``Predictor.update_data_capture_config``
put in CreateEndpointConfig). ``read PREFIX``: the captured records, read the way AWS's Model
Monitor notebook does (``S3Downloader.list`` then ``S3Downloader.read_file`` of each
``.jsonl`` file, one ``json.loads`` per line); S3 is the moto server named by
AWS_ENDPOINT_URL_S3. Prints one JSON line.
"""

import json
import sys

import boto3
import sagemaker
from sagemaker.model_monitor import DataCaptureConfig
from sagemaker.s3 import S3Downloader

command, location = sys.argv[1], sys.argv[2]
if command == "config":
    config = DataCaptureConfig(
        enable_capture=True,
        sampling_percentage=100,
        destination_s3_uri=location,
        csv_content_types=["text/csv"],
        json_content_types=["application/json"],
    )
    print(json.dumps(config._to_request_dict()))
else:
    session = sagemaker.Session(
        boto_session=boto3.Session(region_name="us-east-1"), default_bucket="unused"
    )
    files = [uri for uri in S3Downloader.list(location, sagemaker_session=session)
             if uri.endswith(".jsonl")]  # fmt: skip
    records = []
    for uri in files:
        body = S3Downloader.read_file(uri, sagemaker_session=session)
        records += [json.loads(line) for line in body.splitlines() if line]
    print(json.dumps({"files": files, "records": records}))
