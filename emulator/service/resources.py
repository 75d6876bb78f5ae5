"""Names, ARNs and AWS's exact "not found" / "already exists" / "in progress" texts.

SageMaker's ARNs lower-case the resource name (``arn:aws:sagemaker:REGION:ACCOUNT:endpoint/
my-endpoint``); the semantic errors are all ``ValidationException`` with the ARN in double
quotes and a trailing period (reference §A.3), which is also what boto3's ``endpoint_deleted``
waiter needs to see.
"""

from __future__ import annotations

from smlocal.emulator.aws_errors import ACCOUNT_ID, REGION, AwsError

__all__ = ["ATTACHED_TAG", "SERVE_TAG", "already_exists", "arn", "in_progress", "not_found"]

# The tag `smlocal serve` puts on what it creates (value: the endpoint's name). Such an
# endpoint may be deleted while Creating, so Ctrl-C of a serve is immediate; AWS refuses
# DeleteEndpoint while Creating, and so does the service for every other endpoint.
SERVE_TAG = "smlocal:serve"
# On an endpoint a foreground `smlocal serve` made: that process's identity (PID:START). A
# restarted service deletes such an endpoint whose process is gone instead of restoring it.
ATTACHED_TAG = "smlocal:attached"

# The words AWS uses for each kind in its messages; the kind itself is the ARN's resource type.
_WORDS = {
    "model": "model",
    "endpoint-config": "endpoint configuration",
    "endpoint": "endpoint",
    "transform-job": "transform job",
}


def arn(kind: str, name: str, region: str = REGION) -> str:
    if kind not in _WORDS:
        raise KeyError(kind)
    return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:{kind}/{name.lower()}"


def not_found(kind: str, name: str) -> AwsError:
    return AwsError("ValidationException", f'Could not find {_WORDS[kind]} "{arn(kind, name)}".')


def already_exists(kind: str, name: str) -> AwsError:
    return AwsError(
        "ValidationException",
        f'Cannot create already existing {_WORDS[kind]} "{arn(kind, name)}".',
    )


def in_progress(name: str) -> AwsError:
    # AWS uses the "update" wording for DeleteEndpoint while Creating too (reference §A.3).
    return AwsError(
        "ValidationException", f'Cannot update in-progress endpoint "{arn("endpoint", name)}".'
    )
