"""Run by tests/e2e/test_monitor_sdk.py with the SageMaker Python SDK v2's own virtualenv.

The SDK's model-monitor file classes read the files `smlocal monitor` wrote: Statistics,
Constraints and ConstraintViolations ``from_file_path`` (which go through S3: a moto server
here, by AWS_ENDPOINT_URL), and Constraints.set_monitoring edits them as on AWS. Prints one
JSON line of what the SDK saw.
"""

import json
import sys

import boto3
import sagemaker
from sagemaker.model_monitor import Constraints, ConstraintViolations, Statistics

baseline, report = sys.argv[1], sys.argv[2]
session = sagemaker.Session(
    boto_session=boto3.Session(region_name="us-east-1"), default_bucket="smlocal-monitor-sdk"
)
statistics = Statistics.from_file_path(f"{baseline}/statistics.json", sagemaker_session=session)
constraints = Constraints.from_file_path(f"{baseline}/constraints.json", sagemaker_session=session)
violations = ConstraintViolations.from_file_path(
    f"{report}/constraint_violations.json", sagemaker_session=session
)
window = Statistics.from_file_path(f"{report}/statistics.json", sagemaker_session=session)
first = constraints.body_dict["features"][0]["name"]
constraints.set_monitoring(False, first)
print(
    json.dumps(
        {
            "sdk": sagemaker.__version__,
            "statistics_uri": statistics.file_s3_uri,
            "features": {f["name"]: f["inferred_type"] for f in statistics.body_dict["features"]},
            "item_count": statistics.body_dict["dataset"]["item_count"],
            "kll_buckets": [
                len(f["numerical_statistics"]["distribution"]["kll"]["buckets"])
                for f in statistics.body_dict["features"]
                if "numerical_statistics" in f
            ],
            "comparison_method": constraints.body_dict["monitoring_config"][
                "distribution_constraints"
            ]["comparison_method"],
            "override": constraints.body_dict["features"][0]["monitoring_config_overrides"],
            "violations": [
                [v["feature_name"], v["constraint_check_type"]]
                for v in violations.body_dict["violations"]
            ],
            "window_items": window.body_dict["dataset"]["item_count"],
        }
    )
)
