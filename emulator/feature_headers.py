"""InvokeEndpoint's headers for hosting features smlocal's endpoints never have.

``TargetContainerHostname`` needs a multi-container Model in direct mode
(``InferenceExecutionConfig``), ``InferenceComponentName`` an endpoint with inference
components, ``EnableExplanations`` a ``ClarifyExplainerConfig``: smlocal refuses inference
pipelines and emulates neither inference components nor Clarify, so a request naming one of
them is answered as SageMaker answers a feature header an endpoint lacks — a ValidationError
naming the endpoint — instead of being forwarded and answered 200 as if it had worked. The
wording follows AWS's text for TargetModel on a single-model endpoint (reference §D.4); AWS's
own texts for these three are UNCONFIRMED (README, "Conformance choices").
"""

from __future__ import annotations

from collections.abc import Mapping

from smlocal.emulator.aws_errors import validation_error

__all__ = ["UNSUPPORTED_FEATURE_HEADERS", "check_feature_headers"]

# header (as forwarded, lower case) -> what the endpoint would need, in AWS's terms
UNSUPPORTED_FEATURE_HEADERS: Mapping[str, tuple[str, str]] = {
    "x-amzn-sagemaker-target-container-hostname": (
        "is not configured for direct invocation of its containers",
        "target container hostname",
    ),
    "x-amzn-sagemaker-inference-component": (
        "has no inference components",
        "inference component name",
    ),
    "x-amzn-sagemaker-enable-explanations": (
        "is not configured with a ClarifyExplainerConfig",
        "enable explanations",
    ),
}


def check_feature_headers(endpoint: str, forwarded: Mapping[str, str]) -> None:
    """ValidationError for the first feature header the endpoint cannot honour."""
    for header, (lacks, feature) in UNSUPPORTED_FEATURE_HEADERS.items():
        if header in forwarded:
            raise validation_error(
                f"Endpoint {endpoint} {lacks} and does not support {feature} header."
            )
