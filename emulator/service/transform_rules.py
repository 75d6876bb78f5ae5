"""CreateTransformJob's rules beyond botocore's model, checked before the job is accepted.

botocore's model checks shapes, ranges and enums (:mod:`.validation`); AWS documents more
(reference §F.1/§F.3), and smlocal refuses clearly what it does not emulate. Every refusal is
one ``ValidationException``; the wordings are smlocal's (AWS's are unconfirmed) except the
empty-input one, which is AWS's (aws/amazon-sagemaker-examples#2414).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smlocal.emulator.aws_errors import REGION, AwsError
from smlocal.emulator.service.transform_dataproc import DataProcessing, record_format

__all__ = ["check_job", "no_input"]

# "The value of MaxPayloadInMB cannot be greater than 100 MB ... (MaxConcurrentTransforms *
# MaxPayloadInMB) also cannot exceed 100 MB" (botocore's CreateTransformJob doc).
MAX_PAYLOAD_MB = 100
_EMULATED_SPLITS = ("None", "Line")
_EMULATED_SOURCES = ("S3Prefix", "ManifestFile")


def _refuse(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def check_job(p: Mapping[str, Any]) -> DataProcessing:
    """Refuse what AWS refuses or smlocal does not emulate; the compiled DataProcessing."""
    source = p["TransformInput"]
    output = p["TransformOutput"]
    data_type = source["DataSource"]["S3DataSource"]["S3DataType"]
    split = source.get("SplitType") or "None"
    if data_type not in _EMULATED_SOURCES:
        raise _refuse(
            f"S3DataType {data_type} is not emulated by smlocal; use S3Prefix or ManifestFile."
        )
    if split not in _EMULATED_SPLITS:
        raise _refuse(
            f"SplitType {split} is not emulated by smlocal (RecordIO and TFRecord framing are "
            "not implemented); use None or Line."
        )
    if p.get("BatchStrategy") == "MultiRecord" and split == "None":
        raise _refuse(
            "BatchStrategy MultiRecord needs SplitType Line (RecordIO or TFRecord on AWS): with "
            "SplitType None each object is one record."
        )
    payload = p.get("MaxPayloadInMB")
    if payload is not None and payload > MAX_PAYLOAD_MB:
        raise _refuse(f"MaxPayloadInMB {payload} is over {MAX_PAYLOAD_MB} MB.")
    concurrency = p.get("MaxConcurrentTransforms") or 0
    if payload and concurrency and payload * concurrency > MAX_PAYLOAD_MB:
        raise _refuse(
            f"MaxConcurrentTransforms * MaxPayloadInMB ({concurrency} * {payload}) is over "
            f"{MAX_PAYLOAD_MB} MB."
        )
    try:
        processing = DataProcessing.compile(
            p.get("DataProcessing"), source.get("ContentType"), output.get("Accept")
        )
    except ValueError as error:
        raise _refuse(f"DataProcessing: {error}.") from None
    if processing.active:
        accept = output.get("Accept")
        if accept and record_format(accept) is None:
            raise _refuse(
                f"DataProcessing needs a CSV or JSON Accept (text/csv, application/json, "
                f"application/jsonlines), not {accept!r}."
            )
        if processing.input_format == "csv" and split != "Line":
            raise _refuse("DataProcessing on CSV input needs SplitType Line.")
        if (
            processing.join
            and processing.input_format == "csv"
            and (output.get("AssembleWith") or "None") != "Line"
        ):
            raise _refuse("JoinSource Input on CSV input needs AssembleWith Line.")
    return processing


def no_input(uri: str, role: str | None) -> AwsError:
    """AWS's words for an input location that names no object."""
    bucket = uri.removeprefix("s3://").partition("/")[0]
    return _refuse(
        f'No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure '
        f"that the bucket exists in the selected region ({REGION}), that objects exist under "
        f'that S3 prefix, and that the role "{role or "(none)"}" has "s3:ListBucket" '
        f'permissions on bucket "{bucket}".'
    )
