"""Run by tests/e2e/test_sdk.py with the SageMaker Python SDK v2's own virtualenv.

The SDK's standard BYOC deployment, unchanged but for the Session's clients pointing at the
local service: Model(...).deploy(), Predictor.predict() with JSON and CSV serializers,
predictor.delete_endpoint(). Prints one JSON line of what it saw.
"""

import json
import os
import sys

import boto3
import sagemaker
from sagemaker.deserializers import JSONDeserializer
from sagemaker.model import Model
from sagemaker.predictor import Predictor
from sagemaker.serializers import CSVSerializer, JSONSerializer

url, image, model_data = sys.argv[1], sys.argv[2], sys.argv[3]
boto_session = boto3.Session(region_name="us-east-1")
session = sagemaker.Session(
    boto_session=boto_session,
    sagemaker_client=boto_session.client("sagemaker", endpoint_url=url),
    sagemaker_runtime_client=boto_session.client("sagemaker-runtime", endpoint_url=url),
    default_bucket="unused",
)
model = Model(
    image_uri=image,
    model_data=model_data,
    role="arn:aws:iam::000000000000:role/smlocal",
    sagemaker_session=session,
    predictor_cls=Predictor,
    name="sdk-iris-model",
)
# The SDK polls DescribeEndpoint every 30 s while waiting; wait=False and its own waiter with
# a short delay keep the test quick without changing what deploy() sends.
predictor = model.deploy(
    initial_instance_count=1,
    instance_type="ml.m5.large",
    endpoint_name="sdk-iris",
    wait=False,
)
session.sagemaker_client.get_waiter("endpoint_in_service").wait(
    EndpointName="sdk-iris", WaiterConfig={"Delay": 1, "MaxAttempts": 240}
)
predictor = Predictor(
    "sdk-iris",
    sagemaker_session=session,
    serializer=JSONSerializer(),
    deserializer=JSONDeserializer(),
)
as_json = predictor.predict({"instances": [[5.1, 3.5, 1.4, 0.2]]})
predictor.serializer = CSVSerializer()
as_csv = predictor.predict([6.7, 3.0, 5.2, 2.3])
predictor.delete_endpoint()
print(json.dumps({"json": as_json, "csv": as_csv, "sdk": sagemaker.__version__}))
os._exit(0)
