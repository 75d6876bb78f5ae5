"""Which inference type an endpoint is (real-time, serverless, asynchronous), and the
UpdateEndpoint rule that an endpoint keeps its type.

AWS documents one direction: "Updating a real-time inference endpoint to an on-demand
serverless endpoint or a serverless endpoint with Provisioned Concurrency is currently not
supported" (Developer Guide, *Update a serverless endpoint*). The other directions are
UNCONFIRMED; smlocal refuses them too, because an asynchronous endpoint's queue has no home on
a real-time or serverless fleet (queued requests would vanish) and a serverless fleet has no
instance counts to carry over. :data:`ALLOWED_TYPE_CHANGES` is the one setting to change.
"""

from __future__ import annotations

from enum import StrEnum

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.spec import EndpointSpec

__all__ = ["ALLOWED_TYPE_CHANGES", "InferenceType", "check_type_change", "inference_type"]


class InferenceType(StrEnum):
    REAL_TIME = "real-time"
    SERVERLESS = "serverless"
    ASYNCHRONOUS = "asynchronous"


# (from, to) pairs UpdateEndpoint accepts besides keeping the type.
ALLOWED_TYPE_CHANGES: frozenset[tuple[InferenceType, InferenceType]] = frozenset()


def inference_type(spec: EndpointSpec) -> InferenceType:
    if any(variant.serverless is not None for variant in spec.variants):
        return InferenceType.SERVERLESS
    if spec.asynchronous:
        return InferenceType.ASYNCHRONOUS
    return InferenceType.REAL_TIME


def check_type_change(name: str, current: EndpointSpec, new: EndpointSpec) -> None:
    """Raise AWS's ValidationException when UpdateEndpoint would change the inference type."""
    before, after = inference_type(current), inference_type(new)
    if before == after or (before, after) in ALLOWED_TYPE_CHANGES:
        return
    raise AwsError(
        "ValidationException",
        f"Cannot update endpoint {name} from a {before} endpoint to a {after} endpoint: "
        "UpdateEndpoint does not change an endpoint's inference type. Create a new endpoint "
        "with this endpoint configuration instead.",
    )
