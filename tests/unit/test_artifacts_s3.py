"""Staging models from S3, over real HTTP against a real moto server (no Docker, no AWS)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from smlocal.emulator.artifacts import stage_model
from smlocal.emulator.errors import ArtifactError

SECRET = "testing-secret-never-shown"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials only; never the developer's real configuration."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def make_client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )


class CountingClient:
    """Delegates to a boto3 client and counts the objects it downloads."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.downloads: list[str] = []

    def download_fileobj(self, Bucket: str, Key: str, Fileobj: Any) -> None:
        self.downloads.append(Key)
        self.client.download_fileobj(Bucket, Key, Fileobj)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def s3(moto_url: str) -> CountingClient:
    return CountingClient(make_client(moto_url))


@pytest.fixture
def bucket(s3: CountingClient) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def tarball_bytes(files: dict[str, bytes], *, gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0) if gz else buf.getvalue()


MODEL = {"code/inference.py": b"print('hi')\n", "model.bin": b"\x00weights", "x/y/z.txt": b"z"}


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_tarball_is_downloaded_extracted_and_cached(
    s3: CountingClient, bucket: str, tmp_path: Path
) -> None:
    body = tarball_bytes(MODEL)
    s3.put_object(Bucket=bucket, Key="sklearn/model.tar.gz", Body=body)
    uri = f"s3://{bucket}/sklearn/model.tar.gz"
    cache = tmp_path / "cache"

    staged = stage_model(uri, cache, s3_client=s3)  # type: ignore[arg-type]

    hexdigest = hashlib.sha256(body).hexdigest()
    assert staged.source == uri
    assert staged.digest == f"sha256:{hexdigest}"
    assert staged.path == cache / "models" / hexdigest
    assert read_tree(staged.path) == MODEL
    assert (staged.path / "model.bin").stat().st_mode & 0o444 == 0o444
    downloads = list((cache / "downloads").iterdir())
    assert len(downloads) == 1 and downloads[0].name.endswith(".tar.gz")
    assert downloads[0].read_bytes() == body
    assert s3.downloads == ["sklearn/model.tar.gz"]

    again = stage_model(uri, cache, s3_client=s3)  # type: ignore[arg-type]
    assert again == staged
    assert s3.downloads == ["sklearn/model.tar.gz"]  # unchanged object: not downloaded again

    s3.put_object(Bucket=bucket, Key="sklearn/model.tar.gz", Body=tarball_bytes({"m": b"2"}))
    changed = stage_model(uri, cache, s3_client=s3)  # type: ignore[arg-type]
    assert changed.digest != staged.digest
    assert read_tree(changed.path) == {"m": b"2"}
    assert len(s3.downloads) == 2


def test_plain_tar_key(s3: CountingClient, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="model.tar", Body=tarball_bytes(MODEL, gz=False))
    staged = stage_model(f"s3://{bucket}/model.tar", tmp_path, s3_client=s3)  # type: ignore[arg-type]
    assert read_tree(staged.path) == MODEL


def test_prefix_copies_the_tree_below_it(s3: CountingClient, bucket: str, tmp_path: Path) -> None:
    for rel, data in MODEL.items():
        s3.put_object(Bucket=bucket, Key=f"models/v1/{rel}", Body=data)
    s3.put_object(Bucket=bucket, Key="models/v1/x/", Body=b"")  # a console "folder" marker
    s3.put_object(Bucket=bucket, Key="models/v10/other.bin", Body=b"not ours")
    s3.put_object(Bucket=bucket, Key="models/v1.txt", Body=b"not ours either")
    uri = f"s3://{bucket}/models/v1/"
    cache = tmp_path / "cache"

    staged = stage_model(uri, cache, s3_client=s3)  # type: ignore[arg-type]

    assert read_tree(staged.path) == MODEL
    assert staged.path.parent == cache / "models"
    local = tmp_path / "local"
    for rel, data in MODEL.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    assert staged.digest == stage_model(local, cache).digest  # same tree, same digest
    assert sorted(s3.downloads) == sorted(f"models/v1/{rel}" for rel in MODEL)

    assert stage_model(uri, cache, s3_client=s3) == staged  # type: ignore[arg-type]
    assert len(s3.downloads) == len(MODEL)  # unchanged: nothing downloaded again

    s3.put_object(Bucket=bucket, Key="models/v1/model.bin", Body=b"\x00retrained")
    changed = stage_model(uri, cache, s3_client=s3)  # type: ignore[arg-type]
    assert changed.digest != staged.digest
    assert (changed.path / "model.bin").read_bytes() == b"\x00retrained"
    assert (staged.path / "model.bin").read_bytes() == b"\x00weights"  # old entry untouched


def test_prefix_listing_is_paginated(
    s3: CountingClient, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"shard-{i:02d}.bin": bytes([i]) for i in range(5)}
    for rel, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"p/{rel}", Body=data)
    real_list = s3.client.list_objects_v2

    def two_per_page(**kwargs: Any) -> Any:
        return real_list(MaxKeys=2, **kwargs)

    monkeypatch.setattr(s3.client, "list_objects_v2", two_per_page)
    staged = stage_model(f"s3://{bucket}/p/", tmp_path, s3_client=s3)  # type: ignore[arg-type]
    assert read_tree(staged.path) == files


def test_whole_bucket_as_prefix(s3: CountingClient, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"b")
    staged = stage_model(f"s3://{bucket}/", tmp_path, s3_client=s3)  # type: ignore[arg-type]
    assert read_tree(staged.path) == {"a/b.txt": b"b"}


def test_single_object_is_put_into_the_model_directory(
    s3: CountingClient, bucket: str, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket, Key="models/model.joblib", Body=b"\x80pickle")
    uri = f"s3://{bucket}/models/model.joblib"
    staged = stage_model(uri, tmp_path, s3_client=s3)  # type: ignore[arg-type]
    assert read_tree(staged.path) == {"model.joblib": b"\x80pickle"}
    assert stage_model(uri, tmp_path, s3_client=s3) == staged  # type: ignore[arg-type]
    assert s3.downloads == ["models/model.joblib"]


@pytest.mark.parametrize(
    "key", ["models/missing.tar.gz", "models/missing.joblib"], ids=["tarball", "object"]
)
def test_missing_key(s3: CountingClient, bucket: str, tmp_path: Path, key: str) -> None:
    uri = f"s3://{bucket}/{key}"
    with pytest.raises(ArtifactError) as err:
        stage_model(uri, tmp_path, s3_client=s3)  # type: ignore[arg-type]
    message = str(err.value)
    assert uri in message
    assert "404" in message or "NoSuchKey" in message
    assert "does not exist" in message
    assert SECRET not in message and "Traceback" not in message
    assert not list((tmp_path / "downloads").iterdir())


def test_missing_bucket(s3: CountingClient, tmp_path: Path) -> None:
    uri = "s3://no-such-bucket-smlocal/prefix/"
    with pytest.raises(ArtifactError, match="NoSuchBucket") as err:
        stage_model(uri, tmp_path, s3_client=s3)  # type: ignore[arg-type]
    assert uri in str(err.value)


def test_empty_prefix_is_refused(s3: CountingClient, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no objects below this S3 prefix"):
        stage_model(f"s3://{bucket}/nothing/", tmp_path, s3_client=s3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("p/../../evil.txt", "would be copied outside the model directory"),
        ("p//evil.txt", "would be copied outside the model directory"),
        ("p/a//evil.txt", "empty or '.' path segment"),
        ("p/./evil.txt", "empty or '.' path segment"),
    ],
)
def test_prefix_key_that_would_escape_is_refused(
    s3: CountingClient, bucket: str, tmp_path: Path, key: str, match: str
) -> None:
    s3.put_object(Bucket=bucket, Key="p/ok.txt", Body=b"ok")
    s3.put_object(Bucket=bucket, Key=key, Body=b"evil")
    assert key in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    with pytest.raises(ArtifactError, match=match) as err:
        stage_model(f"s3://{bucket}/p/", tmp_path / "cache", s3_client=s3)  # type: ignore[arg-type]
    assert repr(key) in str(err.value)
    assert not (tmp_path / "evil.txt").exists()
    assert s3.downloads == []


def test_default_client_honours_aws_endpoint_url_s3(
    moto_url: str, s3: CountingClient, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=tarball_bytes(MODEL))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    staged = stage_model(f"s3://{bucket}/model.tar.gz", tmp_path)
    assert read_tree(staged.path) == MODEL


def test_no_credentials(
    moto_url: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    uri = f"s3://{bucket}/model.tar.gz"
    with pytest.raises(ArtifactError, match="no usable AWS credentials") as err:
        stage_model(uri, tmp_path)
    assert uri in str(err.value)


def test_unreachable_endpoint(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}")
    uri = "s3://bucket/model.tar.gz"
    with pytest.raises(ArtifactError, match="Could not connect") as err:
        stage_model(uri, tmp_path, s3_client=client)
    assert uri in str(err.value) and SECRET not in str(err.value)


def test_limits_refuse_an_s3_model_before_anything_is_downloaded(
    s3: CountingClient, bucket: str, tmp_path: Path
) -> None:
    from smlocal.emulator.artifacts import StagingLimits

    for name, data in MODEL.items():
        s3.put_object(Bucket=bucket, Key=f"tree/{name}", Body=data)
    body = tarball_bytes({"w": os.urandom(4096)})
    s3.put_object(Bucket=bucket, Key="big/model.tar.gz", Body=body)
    client: Any = s3
    cache = tmp_path / "cache"
    tree, tarball = f"s3://{bucket}/tree/", f"s3://{bucket}/big/model.tar.gz"
    with pytest.raises(ArtifactError, match=r"more than 2 objects below the prefix"):
        stage_model(tree, cache, s3_client=client, limits=StagingLimits(max_members=2))
    with pytest.raises(ArtifactError, match=r"takes more than 10 bytes"):
        stage_model(tree, cache, s3_client=client, limits=StagingLimits(max_bytes=10))
    with pytest.raises(ArtifactError, match=r"takes more than 1000 bytes"):
        stage_model(tarball, cache, s3_client=client, limits=StagingLimits(max_bytes=1000))
    assert s3.downloads == []
    assert not (cache / "models").exists() or list((cache / "models").iterdir()) == []
