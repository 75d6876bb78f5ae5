"""Run by tests/e2e/test_sdk_transform.py with the SageMaker Python SDK v2's own virtualenv.

The SDK's standard batch transform, unchanged but for the Session's clients pointing at the
local service (S3 is a moto server, through AWS_ENDPOINT_URL): Model(...).transformer(),
Transformer.transform() over an S3 prefix with MultiRecord, a join and an output filter. Prints
one JSON line of the job's status and the output it found in S3.
"""

import json
import os
import sys

import boto3
import sagemaker
from sagemaker.model import Model

url, image, model_data, bucket = sys.argv[1:5]
boto_session = boto3.Session(region_name="us-east-1")
session = sagemaker.Session(
    boto_session=boto_session,
    sagemaker_client=boto_session.client("sagemaker", endpoint_url=url),
    sagemaker_runtime_client=boto_session.client("sagemaker-runtime", endpoint_url=url),
    default_bucket=bucket,
)
model = Model(
    image_uri=image,
    model_data=model_data,
    role="arn:aws:iam::000000000000:role/smlocal",
    sagemaker_session=session,
    name="sdk-iris-transform",
)
transformer = model.transformer(
    instance_count=1,
    instance_type="ml.m5.large",
    strategy="MultiRecord",
    assemble_with="Line",
    accept="text/csv",
    output_path=f"s3://{bucket}/sdk-out",
    max_concurrent_transforms=2,
)
# The SDK polls every few seconds while waiting; wait=False and boto3's own waiter with a
# short delay keep the test quick without changing what transform() sends.
transformer.transform(
    f"s3://{bucket}/sdk-in/",
    content_type="text/csv",
    split_type="Line",
    input_filter="$[1:]",
    join_source="Input",
    output_filter="$[0,-1]",
    job_name="sdk-transform",
    wait=False,
)
session.sagemaker_client.get_waiter("transform_job_completed_or_stopped").wait(
    TransformJobName="sdk-transform", WaiterConfig={"Delay": 1, "MaxAttempts": 240}
)
described = session.sagemaker_client.describe_transform_job(TransformJobName="sdk-transform")
output = boto_session.client("s3").get_object(Bucket=bucket, Key="sdk-out/rows.csv.out")
print(
    json.dumps(
        {
            "status": described["TransformJobStatus"],
            "output": output["Body"].read().decode(),
            "sdk": sagemaker.__version__,
        }
    )
)
os._exit(0)
