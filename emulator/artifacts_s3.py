"""Models in S3: downloading ``s3://`` sources into the cache, keyed by the objects' ETags.

This module owns talking to S3 for staging: ``s3://bucket/key.tar.gz`` is downloaded to
``<cache>/downloads`` (once per bucket, key, ETag and size) and staged like a local tarball;
``s3://bucket/prefix/`` copies the tree below the prefix and ``s3://bucket/key`` copies that
one object, both into ``<cache>/models/<digest>``, with a ``.ref`` file in ``downloads`` so an
unchanged S3 model is not downloaded twice. S3's errors become :class:`ArtifactError` messages
with the error code and a hint; sizes and object counts are checked against the
:class:`~smlocal.emulator.artifacts_limits.StagingLimits` before anything is downloaded, and
cancellation is checked on every chunk written.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import logging
import os
import posixpath
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from smlocal.emulator.artifacts_cache import (
    StagedModel,
    ensure_dir,
    finish,
    make_temp_dir,
    owner_tag,
    remove_tree,
    stage_tarball,
    sweep_stale,
    write_atomically,
)
from smlocal.emulator.artifacts_limits import (
    StagingCancelledError,
    StagingLimits,
    check_cancelled,
)
from smlocal.emulator.artifacts_tree import tree_digest
from smlocal.emulator.errors import ArtifactError

__all__ = ["S3ClientLike", "stage_s3"]

log = logging.getLogger(__name__)

_TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class S3ClientLike(Protocol):
    """The part of a boto3 S3 client that staging uses (a ``boto3.client("s3")`` fits)."""

    def head_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]: ...

    def list_objects_v2(
        self, *, Bucket: str, Prefix: str, ContinuationToken: str = ...
    ) -> Mapping[str, Any]: ...

    def download_fileobj(self, Bucket: str, Key: str, Fileobj: IO[bytes]) -> None: ...


def _parse_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, sep, key = rest.partition("/")
    if not bucket or not sep or any(c.isspace() for c in bucket):
        raise ArtifactError(
            f"malformed S3 URI {uri!r}: expected s3://bucket/key (s3://bucket/model.tar.gz, "
            f"s3://bucket/prefix/ or s3://bucket/key)"
        )
    return bucket, key


def stage_s3(
    label: str,
    uri: str,
    cache_dir: Path,
    client: S3ClientLike | None,
    *,
    limits: StagingLimits,
    cancel: threading.Event | None = None,
) -> StagedModel:
    """Stage ``s3://bucket/key`` (a tarball, a prefix's tree or one object); see the facade."""
    bucket, key = _parse_s3_uri(uri)
    log.info("staging model %s", label)
    sweep_stale(cache_dir)
    s3 = client if client is not None else _default_s3_client(label)
    downloads = ensure_dir(cache_dir / "downloads", label)
    if key.endswith(_TARBALL_SUFFIXES):
        tarball = _download_tarball(label, s3, bucket, key, downloads, limits=limits, cancel=cancel)
        return stage_tarball(label, tarball, cache_dir, limits=limits, cancel=cancel)
    if key == "" or key.endswith("/"):
        objects = _list_prefix(label, s3, bucket, key, limits)
        kind = "prefix"
    else:
        head = _s3_call(label, "HeadObject", lambda: s3.head_object(Bucket=bucket, Key=key))
        name = posixpath.basename(key)
        objects = [(name, key, str(head.get("ETag", "")), int(head.get("ContentLength", -1)))]
        kind = "object"
    limits.check_size(label, sum(max(size, 0) for *_, size in objects))
    identity = _s3_identity(kind, bucket, key, objects)
    ref = downloads / f"{identity}.ref"
    cached = _read_ref(ref, cache_dir)
    if cached is not None:
        log.info("model %s (%s) is unchanged in S3; reusing %s", label, cached.name, cached)
        return StagedModel(source=label, path=cached, digest=f"sha256:{cached.name}")
    models = ensure_dir(cache_dir / "models", label)
    tmp = make_temp_dir(models, identity, label)
    try:
        for rel, obj_key, _etag, size in objects:
            check_cancelled(label, cancel)
            _download_to_tree(
                label, s3, bucket, obj_key, rel=rel, size=size, root=tmp, cancel=cancel
            )
        digest = tree_digest(label, tmp)
        target = models / digest.removeprefix("sha256:")
        if target.is_dir():
            log.info("model %s (%s) is already staged at %s; reusing it", label, digest, target)
        else:
            check_cancelled(label, cancel)
            finish(label, tmp, target)
            log.info("staged %s at %s (%s)", label, target, digest)
    finally:
        remove_tree(tmp)
    write_atomically(ref, f"{digest}\n".encode(), label)
    return StagedModel(source=label, path=target, digest=digest)


def _default_s3_client(label: str) -> S3ClientLike:
    try:
        boto3 = importlib.import_module("boto3")
    except ImportError:  # pragma: no cover - boto3 is a dependency
        raise ArtifactError(f"cannot read {label!r}: boto3 is not installed") from None
    try:
        # A fresh session (not boto3's cached default one) so the current environment counts.
        client: S3ClientLike = boto3.session.Session().client("s3")
    except Exception as exc:
        raise _s3_error(label, "creating the S3 client", exc) from None
    return client


def _s3_call(
    label: str, operation: str, call: Callable[[], Mapping[str, Any]]
) -> Mapping[str, Any]:
    try:
        result: Mapping[str, Any] = call()
    except Exception as exc:
        raise _s3_error(label, operation, exc) from None
    return result


def _is_aws_library_error(exc: BaseException) -> bool:
    return any(
        cls.__module__.split(".")[0] in ("botocore", "boto3", "s3transfer")
        for cls in type(exc).__mro__
    )


def _s3_error(label: str, operation: str, exc: Exception) -> Exception:
    """An ArtifactError with S3's error code and message; anything unexpected is re-raised."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping) and isinstance(response.get("Error"), Mapping):
        error = response["Error"]
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "") or "")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        op = getattr(exc, "operation_name", None) or operation
        hint = ""
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            hint = "; the bucket or key does not exist"
        elif code in ("403", "AccessDenied"):
            hint = "; check the credentials and the bucket policy"
        detail = code if str(status) == code or status is None else f"{code} (HTTP {status})"
        if message and message != code:
            detail += f": {message}"
        return ArtifactError(f"cannot read {label!r}: S3 {op} failed with {detail}{hint}")
    if _is_aws_library_error(exc):
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return ArtifactError(
                f"cannot read {label!r}: no usable AWS credentials ({exc}); configure them "
                f"(AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ...) or stage a local copy"
            )
        return ArtifactError(f"cannot read {label!r}: {operation} failed: {name}: {exc}")
    if isinstance(exc, OSError):
        return ArtifactError(f"cannot read {label!r}: {operation} failed: {exc.strerror or exc}")
    return exc


def _s3_identity(kind: str, bucket: str, key: str, objects: list[tuple[str, str, str, int]]) -> str:
    sha = hashlib.sha256(f"smlocal-s3-v1\0{kind}\0{bucket}\0{key}\0".encode())
    for rel, obj_key, etag, size in sorted(objects):
        sha.update(f"{rel}\0{obj_key}\0{etag}\0{size}\0".encode("utf-8", "surrogatepass"))
    return sha.hexdigest()


def _read_ref(ref: Path, cache_dir: Path) -> Path | None:
    try:
        text = ref.read_text().strip()
    except OSError:
        return None
    hexdigest = text.removeprefix("sha256:")
    if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
        return None
    target = cache_dir / "models" / hexdigest
    return target if target.is_dir() else None


def _download_tarball(
    label: str,
    s3: S3ClientLike,
    bucket: str,
    key: str,
    downloads: Path,
    *,
    limits: StagingLimits,
    cancel: threading.Event | None,
) -> Path:
    head = _s3_call(label, "HeadObject", lambda: s3.head_object(Bucket=bucket, Key=key))
    size = int(head.get("ContentLength", -1))
    limits.check_size(label, size)  # an archive is never much smaller than what it holds
    suffix = next(s for s in _TARBALL_SUFFIXES if key.endswith(s))
    identity = _s3_identity("tarball", bucket, key, [("", key, str(head.get("ETag", "")), size)])
    final = downloads / f"{identity}{suffix}"
    if final.is_file():
        log.info("%s is unchanged in S3; using the earlier download %s", label, final)
        return final
    log.info("downloading %s to %s", label, final)
    fd, tmp_name = _mkstemp(downloads, label)
    try:
        with os.fdopen(fd, "wb") as fh:
            _download(label, s3, bucket, key, fh, cancel=cancel)
        _check_size(label, key, Path(tmp_name), size)
        os.replace(tmp_name, final)
    except OSError as exc:
        raise ArtifactError(
            f"cannot store the download of {label!r} in {str(downloads)!r}: {exc.strerror}"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    return final


def _mkstemp(directory: Path, label: str) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(prefix=f".download.{owner_tag()}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise ArtifactError(
            f"cannot download {label!r} into {str(directory)!r}: {exc.strerror}"
        ) from None


def _download(
    label: str,
    s3: S3ClientLike,
    bucket: str,
    key: str,
    fh: IO[bytes],
    *,
    cancel: threading.Event | None,
) -> None:
    log.debug("GET s3://%s/%s", bucket, key)
    target: IO[bytes] = _CheckedWriter(fh, label, cancel)  # type: ignore[assignment]
    try:
        s3.download_fileobj(bucket, key, target)
    except StagingCancelledError:
        raise
    except Exception as exc:
        raise _s3_error(label, f"GetObject s3://{bucket}/{key}", exc) from None
    check_cancelled(label, cancel)


class _CheckedWriter:
    """A download's file, checking for cancellation on every chunk written."""

    def __init__(self, fh: IO[bytes], label: str, cancel: threading.Event | None) -> None:
        self._fh = fh
        self._label = label
        self._cancel = cancel

    def write(self, data: bytes) -> int:
        check_cancelled(self._label, self._cancel)
        return self._fh.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()


def _check_size(label: str, key: str, path: Path, expected: int) -> None:
    actual = path.stat().st_size
    if expected >= 0 and actual != expected:
        raise ArtifactError(
            f"cannot read {label!r}: downloaded {actual} bytes of {key!r} but S3 reported "
            f"{expected}; the object changed or the download was cut short"
        )


def _list_prefix(
    label: str, s3: S3ClientLike, bucket: str, prefix: str, limits: StagingLimits
) -> list[tuple[str, str, str, int]]:
    """(relative path, key, ETag, size) of every object below the prefix; unsafe keys refused."""
    objects: list[tuple[str, str, str, int]] = []
    token: str | None = None
    while True:
        page = _s3_call(
            label, "ListObjectsV2", functools.partial(_list_page, s3, bucket, prefix, token)
        )
        for obj in page.get("Contents", []) or []:
            key = str(obj["Key"])
            rel = key[len(prefix) :]
            if not rel or rel.endswith("/"):
                continue  # "folder" marker objects carry no data
            _check_relative_key(label, key, rel)
            objects.append((rel, key, str(obj.get("ETag", "")), int(obj.get("Size", -1))))
            limits.check_members(label, len(objects), "objects below the prefix")
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        if not token:
            break
    if not objects:
        raise ArtifactError(f"model source {label!r}: there are no objects below this S3 prefix")
    return objects


def _list_page(s3: S3ClientLike, bucket: str, prefix: str, token: str | None) -> Mapping[str, Any]:
    if token is None:
        return s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return s3.list_objects_v2(Bucket=bucket, Prefix=prefix, ContinuationToken=token)


def _check_relative_key(label: str, key: str, rel: str) -> None:
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts:
        raise ArtifactError(
            f"model source {label!r}: object key {key!r} would be copied outside the model "
            f"directory"
        )
    if any(part in ("", ".") for part in parts) or "\0" in rel:
        raise ArtifactError(
            f"model source {label!r}: object key {key!r} has an empty or '.' path segment and "
            f"cannot be mapped to a file"
        )


def _download_to_tree(
    label: str,
    s3: S3ClientLike,
    bucket: str,
    key: str,
    *,
    rel: str,
    size: int,
    root: Path,
    cancel: threading.Event | None,
) -> None:
    dest = root.joinpath(*rel.split("/"))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fh = dest.open("xb")
    except OSError as exc:
        raise ArtifactError(
            f"model source {label!r}: object {key!r} cannot be stored as {rel!r}: {exc.strerror}"
        ) from None
    with fh:
        _download(label, s3, bucket, key, fh, cancel=cancel)
    _check_size(label, key, dest, size)
