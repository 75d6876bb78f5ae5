"""The manifest: written as resources appear, read back by cleanup in dependency order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smlocal.emulator.errors import ConfigError
from smlocal.promote.cleanup import CleanupOptions, pending
from smlocal.promote.manifest import CLEANUP_ORDER, Manifest


def _manifest(tmp_path: Path) -> Manifest:
    return Manifest(tmp_path / "d" / "dep-1.json", "dep-1", "iris", "us-east-1")


def test_each_record_is_on_disk_at_once(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.record("ecr-repository", "smlocal/iris", created=True, arn="arn:repo")
    on_disk = json.loads(manifest.path.read_text())
    assert on_disk["resources"][0]["id"] == "smlocal/iris"
    assert on_disk["resources"][0]["created"] is True
    assert on_disk["resources"][0]["at"]


def test_round_trip(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.skip_gate = True
    manifest.record("s3-bucket", "b", created=False)
    manifest.finish("failed", {"step": "s3 bucket", "error": "AccessDenied"})
    loaded = Manifest.load(manifest.path)
    assert loaded.skip_gate is True
    assert loaded.failure == {"step": "s3 bucket", "error": "AccessDenied"}
    assert loaded.resources == manifest.resources


def test_cleanup_order_is_reverse_dependency_and_skips_pre_existing(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    for kind in ("iam-role", "ecr-repository", "scaling-policy", "sagemaker-endpoint", "s3-object"):
        manifest.record(kind, kind, created=True)
    manifest.record("s3-bucket", "theirs", created=False)
    order = [r.kind for r in pending(manifest, CleanupOptions())]
    assert order == [
        "scaling-policy",
        "sagemaker-endpoint",
        "s3-object",
        "ecr-repository",
        "iam-role",
    ]
    assert order == sorted(order, key=CLEANUP_ORDER.index)


def test_keep_artifacts_leaves_s3_and_ecr(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    for kind in ("ecr-image", "s3-object", "sagemaker-model"):
        manifest.record(kind, kind, created=True)
    assert [r.kind for r in pending(manifest, CleanupOptions(keep_artifacts=True))] == [
        "sagemaker-model"
    ]


def test_deleted_resources_are_not_pending_again(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    resource = manifest.record("sagemaker-model", "m", created=True)
    manifest.mark_deleted(resource)
    assert pending(Manifest.load(manifest.path), CleanupOptions()) == []


def test_unknown_kind_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown resource kind"):
        _manifest(tmp_path).record("lambda", "x", created=True)


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no manifest at"):
        Manifest.load(tmp_path / "nope.json")


def test_default_path_honours_smlocal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from smlocal.promote.manifest import default_manifest_path

    project = tmp_path / "project"
    monkeypatch.setenv("SMLOCAL_HOME", str(tmp_path / "home"))
    assert default_manifest_path(project, "d-1") == tmp_path / "home" / "deployments" / "d-1.json"
    monkeypatch.delenv("SMLOCAL_HOME")
    assert (
        default_manifest_path(project, "d-1") == project / ".smlocal" / "deployments" / "d-1.json"
    )
