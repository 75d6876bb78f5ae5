"""Run by tests/e2e/test_sdk_multi_model.py with the SageMaker Python SDK v2's own virtualenv.

The SDK's multi-model deployment, unchanged but for the Session's clients pointing at the local
service (S3 wherever AWS_ENDPOINT_URL_S3 says): MultiDataModel(...), add_model() uploading
each local model.tar.gz under the prefix, deploy(), Predictor.predict(target_model=...),
list_models(), delete_endpoint(). Prints one JSON line of what it saw.
"""

import json
import os
import sys
from pathlib import Path

import boto3
import sagemaker
from sagemaker.deserializers import JSONDeserializer
from sagemaker.multidatamodel import MultiDataModel
from sagemaker.predictor import Predictor
from sagemaker.serializers import JSONSerializer

url, image, prefix, models = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
boto_session = boto3.Session(region_name="us-east-1")
session = sagemaker.Session(
    boto_session=boto_session,
    sagemaker_client=boto_session.client("sagemaker", endpoint_url=url),
    sagemaker_runtime_client=boto_session.client("sagemaker-runtime", endpoint_url=url),
    default_bucket=prefix.removeprefix("s3://").split("/")[0],
)
mdm = MultiDataModel(
    name="sdk-mme-model",
    model_data_prefix=prefix,
    image_uri=image,
    role="arn:aws:iam::000000000000:role/smlocal",
    sagemaker_session=session,
)
for artifact in sorted(models.glob("*.tar.gz")):
    mdm.add_model(model_data_source=str(artifact), model_data_path=artifact.name)
mdm.deploy(
    initial_instance_count=1, instance_type="ml.m5.large", endpoint_name="sdk-mme", wait=False
)
session.sagemaker_client.get_waiter("endpoint_in_service").wait(
    EndpointName="sdk-mme", WaiterConfig={"Delay": 1, "MaxAttempts": 240}
)
predictor = Predictor(
    "sdk-mme",
    sagemaker_session=session,
    serializer=JSONSerializer(),
    deserializer=JSONDeserializer(),
)
flower = {"instances": [[6.3, 2.8, 5.1, 1.5]]}
answers = {
    target: predictor.predict(flower, target_model=target)["model_id"]
    for target in ("logistic.tar.gz", "stump.tar.gz", "logistic.tar.gz")
}
listed = sorted(mdm.list_models())
described = session.sagemaker_client.describe_model(ModelName="sdk-mme-model")
predictor.delete_endpoint()
print(
    json.dumps(
        {
            "answers": answers,
            "listed": listed,
            "mode": described["PrimaryContainer"].get("Mode"),
            "sdk": sagemaker.__version__,
        }
    )
)
os._exit(0)
