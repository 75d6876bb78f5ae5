"""Where a transform job's data comes from and goes to, and how an object becomes requests.

Owns the input side of batch transform (reference §F.1/§F.2): the objects of an ``S3Prefix``
or a ``ManifestFile`` (``[{"prefix": "s3://bucket/p/"}, "relative/key", ...]``), each with the
path relative to the prefix that names its output (``<S3OutputPath>/<relative>.out``); an
object fetched to a local spool file (boto3's transfer manager: real S3, or a moto server
through ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``), gunzipped when ``CompressionType`` is
``Gzip``; records (``SplitType`` ``None``: the whole object; ``Line``: each non-empty line)
packed into request bodies (``SingleRecord``: one each; ``MultiRecord``: as many as fit in
``MaxPayloadInMB``, 0 meaning no limit); and the output written where ``S3OutputPath`` says.

smlocal's extension: a location may be a local path (a directory, a file, ``file://...``)
instead of ``s3://``, for ``smlocal transform --input DIR --output DIR``.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "InputObject",
    "NoInput",
    "RecordTooLarge",
    "fetch",
    "is_s3",
    "list_inputs",
    "pack",
    "records",
    "split_s3",
    "write_output",
]

S3Client = Callable[[], Any]
MB = 1024 * 1024


class NoInput(ValueError):
    """The input location names no object (AWS refuses the job at CreateTransformJob)."""


class RecordTooLarge(ValueError):
    """One record alone is larger than MaxPayloadInMB."""


@dataclass(frozen=True)
class InputObject:
    location: str  # s3://bucket/key or a local path
    relative: str  # its path under the input prefix: names its output object


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def split_s3(location: str) -> tuple[str, str]:
    bucket, _, key = location.removeprefix("s3://").partition("/")
    return bucket, key


def _local(location: str) -> Path:
    return Path(location.removeprefix("file://")).expanduser()


def list_inputs(data_type: str, uri: str, s3: S3Client) -> list[InputObject]:
    """Every object the data source names, in key order (a manifest: in its order)."""
    if data_type == "ManifestFile":
        return _manifest(uri, s3)
    found = _under_prefix(uri, s3) if is_s3(uri) else _under_path(_local(uri))
    if not found:
        raise NoInput(uri)
    return found


def _under_prefix(uri: str, s3: S3Client) -> list[InputObject]:
    bucket, prefix = split_s3(uri)
    # A prefix that ends mid-name ("data/part-") keeps the object names whole.
    base = prefix if prefix.endswith("/") or not prefix else prefix.rpartition("/")[0] + "/"
    base = "" if base == "/" else base
    found = []
    pages = s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/"):
                continue  # a "folder" marker, not data
            found.append(InputObject(f"s3://{bucket}/{key}", key[len(base) :].lstrip("/")))
    return sorted(found, key=lambda o: o.location)


def _under_path(path: Path) -> list[InputObject]:
    if path.is_file():
        return [InputObject(str(path), path.name)]
    if not path.is_dir():
        return []
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return [InputObject(str(p), p.relative_to(path).as_posix()) for p in files]


def _manifest(uri: str, s3: S3Client) -> list[InputObject]:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        text = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    else:
        text = _local(uri).read_bytes()
    try:
        entries = json.loads(text)
    except ValueError as error:
        raise ValueError(f"the manifest {uri} is not JSON: {error}") from None
    if (
        not isinstance(entries, list)
        or not entries
        or not isinstance(entries[0], dict)
        or not isinstance(entries[0].get("prefix"), str)
        or not all(isinstance(e, str) and e for e in entries[1:])
    ):
        raise ValueError(
            f'the manifest {uri} must be [{{"prefix": "s3://bucket/prefix/"}}, "relative/path", '
            "...] (a prefix object, then relative paths)"
        )
    prefix = entries[0]["prefix"]
    if len(entries) == 1:
        raise NoInput(uri)
    joiner = "" if prefix.endswith("/") else "/"
    return [InputObject(f"{prefix}{joiner}{rel}", rel.lstrip("/")) for rel in entries[1:]]


def fetch(item: InputObject, target: Path, s3: S3Client) -> Path:
    """The object as a local file (downloaded from S3 to ``target``; a local one as it is)."""
    if not is_s3(item.location):
        return _local(item.location)
    target.parent.mkdir(parents=True, exist_ok=True)
    bucket, key = split_s3(item.location)
    s3().download_file(bucket, key, str(target))
    return target


def _open(path: Path, compression: str) -> io.BufferedIOBase:
    if compression == "Gzip":
        return gzip.open(path, "rb")
    return path.open("rb")


def records(path: Path, split_type: str, compression: str) -> Iterator[bytes]:
    """The object's records: all of it (``None``) or each non-empty line, line end included."""
    with _open(path, compression) as stream:
        if split_type == "None":
            yield stream.read()
            return
        for line in stream:
            if line.strip(b"\r\n"):
                yield line


def pack(
    items: Iterator[tuple[bytes, bytes]], multi: bool, max_bytes: int | None
) -> Generator[tuple[list[bytes], bytes], None, None]:
    """Requests from (record, what the container gets for it) pairs: (the records, the body).

    SingleRecord: one record per body, as it is. MultiRecord: records one per line, as many
    as fit in ``max_bytes`` (None: no limit). A record larger than the limit alone raises
    :class:`RecordTooLarge`.
    """
    batch: list[bytes] = []
    body: list[bytes] = []
    size = 0
    for number, (raw, sent) in enumerate(items, 1):
        piece = sent + b"\n" if multi else sent
        if max_bytes is not None and len(piece) > max_bytes:
            raise RecordTooLarge(
                f"record {number} is {len(piece)} bytes, over MaxPayloadInMB ({max_bytes // MB} MB)"
            )
        if not multi:
            yield [raw], sent
            continue
        if batch and max_bytes is not None and size + len(piece) > max_bytes:
            yield batch, b"".join(body)
            batch, body, size = [], [], 0
        batch.append(raw)
        body.append(piece)
        size += len(piece)
    if batch:
        yield batch, b"".join(body)


def output_location(output_path: str, relative: str) -> str:
    return f"{output_path.rstrip('/')}/{relative}.out"


def write_output(
    spool: Path, output_path: str, relative: str, content_type: str | None, s3: S3Client
) -> str:
    """Put a finished object's output where S3OutputPath says; returns its location."""
    location = output_location(output_path, relative)
    if is_s3(location):
        bucket, key = split_s3(location)
        extra = {"ContentType": content_type} if content_type else None
        s3().upload_file(str(spool), bucket, key, ExtraArgs=extra)
        return location
    target = _local(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A name of this write's own: two jobs (or two threads) writing one output must not
    # rename each other's partial file.
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex}")
    shutil.copyfile(spool, partial)
    partial.replace(target)  # whole or not at all
    return str(target)
