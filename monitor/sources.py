"""Where capture files are: a local directory or an S3 prefix, listed and read alike.

:class:`CaptureSource` lists the ``.../yyyy/mm/dd/hh/*.jsonl`` files below its root (paths
relative to it, with the hour their folders name) and reads one. S3 goes through boto3
(``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` reach moto or another S3); its errors and a
missing directory are a :class:`MonitorInputError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smlocal.monitor.errors import MonitorInputError

__all__ = ["CaptureFile", "CaptureSource"]

_HOUR_PATH = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+\.jsonl$")


@dataclass(frozen=True)
class CaptureFile:
    rel: str
    hour: datetime


def _hour_of(path: str) -> datetime | None:
    match = _HOUR_PATH.search(path)
    if not match:
        return None
    y, mo, d, h = (int(g) for g in match.groups())
    try:
        return datetime(y, mo, d, h, tzinfo=UTC)
    except ValueError:
        return None


class CaptureSource:
    """``source``: a directory, or ``s3://BUCKET/PREFIX``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.is_s3 = source.startswith("s3://")
        self._s3: Any = None
        if self.is_s3:
            self.bucket, _, prefix = source.removeprefix("s3://").partition("/")
            # A folder: s3://b/capture must not take s3://b/capture-old/... too.
            self.prefix = f"{prefix.rstrip('/')}/" if prefix.strip("/") else ""
            if not self.bucket:
                raise MonitorInputError(f"--capture {source}: no bucket (s3://BUCKET/PREFIX)")

    def _client(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def _s3_error(self, error: Exception) -> MonitorInputError:
        return MonitorInputError(f"--capture {self.source}: S3 said: {error}")

    def files(self) -> list[CaptureFile]:
        """Every capture file below the root, in path order (so in time order)."""
        rels = self._s3_keys() if self.is_s3 else self._local_paths()
        found = [CaptureFile(rel, hour) for rel in rels if (hour := _hour_of(rel)) is not None]
        return sorted(found, key=lambda f: f.rel)

    def _local_paths(self) -> list[str]:
        root = Path(self.source)
        if not root.is_dir():
            raise MonitorInputError(f"--capture {root}: no such directory")
        return [p.relative_to(root).as_posix() for p in root.rglob("*.jsonl")]

    def _s3_keys(self) -> list[str]:
        import botocore.exceptions

        keys: list[str] = []
        try:
            pages = self._client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
                keys.extend(o["Key"] for o in page.get("Contents", []))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._s3_error(error) from None
        return [k[len(self.prefix) :] for k in keys if k.endswith(".jsonl")]

    def read(self, file: CaptureFile) -> bytes:
        if not self.is_s3:
            try:
                return (Path(self.source) / file.rel).read_bytes()
            except OSError as error:
                raise MonitorInputError(f"--capture {self.source}: {error}") from None
        import botocore.exceptions

        key = f"{self.prefix}{file.rel}"
        try:
            body: bytes = self._client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._s3_error(error) from None
        return body
