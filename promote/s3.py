"""S3: the artifact bucket (encrypted, public access blocked, versioned) and the model upload.

The upload is multipart above 8 MiB and carries a SHA-256 checksum per part (S3 verifies each
part on arrival); the whole file's SHA-256 (the model digest) is stored as object metadata.
A pre-existing bucket is used as it is: its settings belong to its owner.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from pathlib import Path

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from smlocal.promote.aws import Clients, describe_error, error_code
from smlocal.promote.context import TAG_KEY, Deployment
from smlocal.promote.errors import PromoteError
from smlocal.promote.manifest import Resource

__all__ = [
    "delete_bucket",
    "delete_object",
    "ensure_bucket",
    "plan",
    "plan_bucket",
    "plan_upload",
    "upload_model",
]

_PART = 8 * 1024 * 1024
_NOT_FOUND = ("404", "NoSuchBucket", "NotFound")
# An s3-object recorded before its upload was confirmed: the deployment id whose tag marks it.
UNCONFIRMED = "unconfirmed_upload"


def _local_models(dep: Deployment) -> list[str]:
    return [m for m in dep.models if not m.startswith("s3://")]


def plan_bucket(dep: Deployment) -> list[str]:
    if not _local_models(dep):
        return [f"(models already in S3: {', '.join(dep.models)}; no bucket)"]
    bucket = dep.bucket
    return [
        f"s3.head_bucket(Bucket={bucket!r})",
        f"s3.create_bucket(Bucket={bucket!r}) if missing, then put_bucket_encryption(AES256), "
        "put_public_access_block(all four on), put_bucket_versioning(Enabled), "
        f"put_bucket_tagging({TAG_KEY})",
    ]


def plan_upload(dep: Deployment) -> list[str]:
    calls: list[str] = []
    bucket = dep.bucket
    for model in dep.models:
        if model.startswith("s3://"):
            calls.append(f"(model already in S3: {model}; no upload)")
            continue
        key = dep.model_key_for(model)
        calls += [
            f"s3 multipart upload {model} → s3://{bucket}/{key} "
            "(ChecksumAlgorithm=SHA256, 8 MiB parts)",
            f"s3.head_object(Bucket={bucket!r}, Key={key!r}, ChecksumMode='ENABLED')",
        ]
    return calls


def plan(dep: Deployment) -> list[str]:
    return plan_bucket(dep) + plan_upload(dep)


def ensure_bucket(dep: Deployment) -> None:
    if not _local_models(dep):
        return
    s3, bucket = dep.clients.s3, dep.bucket
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error_code(error) not in _NOT_FOUND:
            raise
    else:
        dep.manifest.record(
            "s3-bucket", bucket, created=False, arn=f"arn:{dep.partition}:s3:::{bucket}"
        )
        dep.reporter.info(f"bucket {bucket} (exists)")
        return
    if dep.request.region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": dep.request.region},  # type: ignore[typeddict-item]
        )
    dep.manifest.record("s3-bucket", bucket, created=True, arn=f"arn:{dep.partition}:s3:::{bucket}")
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": dep.tags})
    dep.reporter.info(f"bucket {bucket} (created: encrypted, private, versioned)")


def _tarball(model: Path, workdir: Path) -> Path:
    """SageMaker wants a model.tar.gz; a model directory is packed into one first."""
    if model.is_file():
        return model
    if not model.is_dir():
        raise PromoteError(f"model {model} is neither a model.tar.gz nor a directory")
    target = workdir / "model.tar.gz"
    with tarfile.open(target, "w:gz") as archive:
        for child in sorted(model.iterdir()):
            archive.add(child, arcname=child.name)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_PART):
            digest.update(chunk)
    return digest.hexdigest()


def _uploaded_sha256(dep: Deployment, bucket: str, key: str) -> str | None:
    """The sha256 metadata of an object already at ``key`` (a resumed run), or None."""
    try:
        head = dep.clients.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in _NOT_FOUND:
            return None
        raise
    return head.get("Metadata", {}).get("sha256")


def upload_model(dep: Deployment) -> None:
    """One upload per distinct model; s3:// models are used where they are."""
    for model in dep.models:
        _upload_one(dep, model)
    dep.model_data_url = dep.model_urls[dep.models[0]]


def _upload_one(dep: Deployment, model: str) -> None:
    if model.startswith("s3://"):
        dep.model_urls[model] = model
        return
    s3, bucket, key = dep.clients.s3, dep.bucket, dep.model_key_for(model)
    url = f"s3://{bucket}/{key}"
    dep.model_urls[model] = url
    with tempfile.TemporaryDirectory(prefix="smlocal-promote-") as workdir:
        path = _tarball(Path(model).expanduser(), Path(workdir))
        sha256 = _sha256(path)
        if _uploaded_sha256(dep, bucket, key) == sha256:
            dep.reporter.info(f"s3://{bucket}/{key} is already uploaded")
            return
        earlier = dep.manifest.find("s3-object", url)
        # In the manifest before the upload: when the connection drops mid-upload (or before
        # its answer is read) the object may exist without our knowing its version, and a
        # cleanup must still find it (the versions carrying this deployment's tag).
        unconfirmed = dep.manifest.record(
            "s3-object",
            url,
            created=True,
            arn=f"arn:{dep.partition}:s3:::{bucket}/{key}",
            details={
                "bucket": bucket,
                "key": key,
                UNCONFIRMED: dep.request.deployment_id,
            },
        )
        try:
            s3.upload_file(
                str(path),
                bucket,
                key,
                ExtraArgs={
                    "ChecksumAlgorithm": "SHA256",
                    "Metadata": {"sha256": sha256},
                    "Tagging": f"{TAG_KEY.replace(':', '%3A')}={dep.request.deployment_id}",
                },
                Config=TransferConfig(multipart_threshold=_PART, multipart_chunksize=_PART),
            )
        except S3UploadFailedError as error:
            # boto3 wraps AWS's ClientError; report AWS's own code and message. AWS answered
            # with a refusal, so nothing was written: the object is not ours to clean up.
            cause = error.__cause__ or error.__context__ or error
            if earlier is None:
                dep.manifest.forget(unconfirmed)
            else:
                unconfirmed.details.pop(UNCONFIRMED, None)
                dep.manifest.save()
            raise PromoteError(
                f"upload to s3://{bucket}/{key} failed: {describe_error(cause)}"
            ) from None
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    versions = list(unconfirmed.details.get("version_ids", []))
    versions.append(head.get("VersionId") or "null")
    unconfirmed.details.pop(UNCONFIRMED, None)
    dep.manifest.record(
        "s3-object",
        url,
        created=True,
        arn=f"arn:{dep.partition}:s3:::{bucket}/{key}",
        details={
            "bucket": bucket,
            "key": key,
            # Every version this deployment wrote: cleanup deletes each of them.
            "version_ids": versions,
            "sha256": sha256,
            "checksum_sha256": head.get("ChecksumSHA256"),
        },
    )
    dep.reporter.info(f"uploaded s3://{bucket}/{key} ({head.get('ContentLength', 0)} bytes)")


def _tagged_versions(clients: Clients, bucket: str, key: str, deployment_id: str) -> list[str]:
    """The versions of ``key`` that carry ``deployment_id``'s tag (an unconfirmed upload's)."""
    s3 = clients.s3
    try:
        listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    except ClientError as error:
        if error_code(error) in _NOT_FOUND:
            return []
        raise
    ours = []
    for version in listing.get("Versions", []):
        if version["Key"] != key:
            continue
        version_id = str(version.get("VersionId") or "null")
        if version_id == "null":
            tags = s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
        else:
            tagging = s3.get_object_tagging(Bucket=bucket, Key=key, VersionId=version_id)
            tags = tagging.get("TagSet", [])
        if {"Key": TAG_KEY, "Value": deployment_id} in tags:
            ours.append(version_id)
    return ours


def delete_object(clients: Clients, resource: Resource) -> str:
    bucket, key = resource.details["bucket"], resource.details["key"]
    versions = list(resource.details.get("version_ids", []))
    unconfirmed = resource.details.get(UNCONFIRMED)
    if unconfirmed:
        versions += [
            v for v in _tagged_versions(clients, bucket, key, unconfirmed) if v not in versions
        ]
        if not versions:
            return "already gone (its upload never completed)"
    for version in versions or ["null"]:
        if version != "null":
            # A versioned bucket keeps a "deleted" object as a noncurrent version: delete
            # exactly the versions we wrote, never anyone else's.
            clients.s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        else:
            clients.s3.delete_object(Bucket=bucket, Key=key)
    return "deleted"


def delete_bucket(clients: Clients, resource: Resource) -> str:
    s3 = clients.s3
    try:
        listing = s3.list_object_versions(Bucket=resource.id, MaxKeys=1)
    except ClientError as error:
        if error_code(error) in _NOT_FOUND:
            return "already gone"
        raise
    left = listing.get("Versions", []) + listing.get("DeleteMarkers", [])
    if left:
        resource.details["kept"] = "it still holds objects smlocal did not upload"
        return "kept: it still holds objects smlocal did not upload"
    s3.delete_bucket(Bucket=resource.id)
    return "deleted"
