"""A small on-demand price table for SageMaker real-time inference instances.

Source: the "Real-Time Inference" on-demand table of https://aws.amazon.com/sagemaker/pricing/
for US East (N. Virginia), USD per instance-hour. Entered 2026-11-23 from that table as last
known, NOT fetched live (this machine has no AWS price API access): treat the figures as
approximate, check the page before budgeting (prices change and differ by region), and use
``--price-per-hour`` to override.
"""

from __future__ import annotations

__all__ = ["PRICE_DATE", "PRICE_REGION", "PRICE_SOURCE", "price_per_hour"]

PRICE_SOURCE = "https://aws.amazon.com/sagemaker/pricing/ (Real-Time Inference, on-demand)"
PRICE_REGION = "us-east-1"
PRICE_DATE = "2026-11-23"

_USD_PER_HOUR = {
    "ml.t2.medium": 0.056,
    "ml.t2.large": 0.111,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
    "ml.g4dn.xlarge": 0.736,
    "ml.g5.xlarge": 1.408,
}


def price_per_hour(instance_type: str) -> float | None:
    """USD per instance-hour, or None when the table does not list the type."""
    return _USD_PER_HOUR.get(instance_type)
