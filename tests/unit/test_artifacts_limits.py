"""Staging is bounded, interruptible and leaves nothing behind; the tarball digest is indexed."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from smlocal.emulator import artifacts_cache
from smlocal.emulator.artifacts import (
    DEFAULT_MAX_MODEL_BYTES,
    StagingCancelledError,
    StagingLimits,
    stage_model,
    stage_model_async,
    sweep_stale,
)
from smlocal.emulator.errors import ArtifactError
from tests.unit.test_artifacts import all_paths, file_member, link_member, make_tar

MIB = 1024 * 1024


def cache_is_clean(cache: Path) -> None:
    """Nothing staged, nothing half-staged, no digest recorded."""
    assert list((cache / "models").iterdir()) == []
    assert not (cache / "digests").exists() or list((cache / "digests").iterdir()) == []


def zeros_tarball(path: Path, size: int, count: int = 1) -> Path:
    return make_tar(path, [file_member(f"zeros{i}.bin", bytes(size)) for i in range(count)])


# ------------------------------------------------------------------------------------------
# limits


def test_the_default_size_cap_is_a_default_sagemaker_volume() -> None:
    assert DEFAULT_MAX_MODEL_BYTES == 30 * 1024**3
    assert StagingLimits.from_env({}) == StagingLimits()


def test_a_bomb_is_refused_by_its_compression_ratio(tmp_path: Path) -> None:
    tarball = zeros_tarball(tmp_path / "model.tar.gz", 8 * MIB)  # ~1000x
    cache = tmp_path / "cache"
    limits = StagingLimits(max_ratio=200, ratio_min_bytes=2 * MIB)
    with pytest.raises(ArtifactError, match=r"over 200x its size") as err:
        stage_model(tarball, cache, limits=limits)
    message = str(err.value)
    assert str(tarball) in message
    assert "decompression bomb" in message
    assert "SMLOCAL_MAX_MODEL_RATIO" in message
    cache_is_clean(cache)


def test_the_ratio_guard_spares_small_compressible_models(tmp_path: Path) -> None:
    tarball = zeros_tarball(tmp_path / "model.tar.gz", 1 * MIB)
    limits = StagingLimits(max_ratio=200, ratio_min_bytes=2 * MIB)
    staged = stage_model(tarball, tmp_path / "cache", limits=limits)
    assert (staged.path / "zeros0.bin").stat().st_size == MIB


def test_a_bomb_is_refused_by_a_small_size_cap(tmp_path: Path) -> None:
    tarball = zeros_tarball(tmp_path / "model.tar.gz", MIB, count=3)
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactError, match=r"takes more than 2\.0 MiB") as err:
        stage_model(tarball, cache, limits=StagingLimits(max_bytes=2 * MIB))
    assert "SMLOCAL_MAX_MODEL_BYTES=" in str(err.value)
    cache_is_clean(cache)


def test_the_size_cap_is_inclusive(tmp_path: Path) -> None:
    tarball = zeros_tarball(tmp_path / "model.tar.gz", MIB, count=2)
    staged = stage_model(tarball, tmp_path / "cache", limits=StagingLimits(max_bytes=2 * MIB))
    assert sorted(p.name for p in staged.path.iterdir()) == ["zeros0.bin", "zeros1.bin"]


def test_the_size_cap_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = zeros_tarball(tmp_path / "model.tar.gz", 2 * MIB)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SMLOCAL_MAX_MODEL_BYTES", "1M")
    with pytest.raises(ArtifactError, match=r"takes more than 1\.0 MiB"):
        stage_model(tarball, cache)
    cache_is_clean(cache)
    monkeypatch.setenv("SMLOCAL_MAX_MODEL_BYTES", "3MiB")
    assert stage_model(tarball, cache).path.is_dir()


@pytest.mark.parametrize("value", ["lots", "-5", "0", "1X"])
def test_a_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    tarball = zeros_tarball(tmp_path / "model.tar.gz", 10)
    monkeypatch.setenv("SMLOCAL_MAX_MODEL_BYTES", value)
    with pytest.raises(ArtifactError, match=r"SMLOCAL_MAX_MODEL_BYTES=.* is not a positive number"):
        stage_model(tarball, tmp_path / "cache")


def test_a_huge_declared_member_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    info = tarfile.TarInfo("weights.bin")
    info.size = 40 * 1024**3  # declared, never written: the default 30 GiB cap refuses it first
    raw = info.tobuf(tarfile.PAX_FORMAT) + bytes(4096)
    tarball = tmp_path / "model.tar.gz"
    tarball.write_bytes(gzip.compress(raw))
    cache = tmp_path / "cache"
    started = time.monotonic()
    with pytest.raises(ArtifactError, match=r"takes more than 30\.0 GiB.*VolumeSizeInGB"):
        stage_model(tarball, cache)
    assert time.monotonic() - started < 5
    cache_is_clean(cache)


def test_hard_links_count_at_their_target_size(tmp_path: Path) -> None:
    members = [file_member("w.bin", bytes(600_000))]
    members += [link_member(f"h{i}", "w.bin", hard=True) for i in range(3)]
    tarball = make_tar(tmp_path / "model.tar.gz", members)
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactError, match="takes more than"):
        stage_model(tarball, cache, limits=StagingLimits(max_bytes=2 * MIB))
    cache_is_clean(cache)


def test_the_member_count_is_capped(tmp_path: Path) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member(f"f{i}") for i in range(11)])
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactError, match=r"more than 10 members.*SMLOCAL_MAX_MODEL_MEMBERS"):
        stage_model(tarball, cache, limits=StagingLimits(max_members=10))
    cache_is_clean(cache)
    assert stage_model(tarball, cache, limits=StagingLimits(max_members=11)).path.is_dir()


# ------------------------------------------------------------------------------------------
# cancellation


class TripWire(threading.Event):
    """An event that reads as set from its ``after``-th check on; counts the checks."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.checks = 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks >= self.after or super().is_set()


def test_cancelling_between_members_removes_the_partial_tree(tmp_path: Path) -> None:
    tarball = make_tar(
        tmp_path / "model.tar.gz", [file_member(f"f{i}", os.urandom(1000)) for i in range(50)]
    )
    cache = tmp_path / "cache"
    wire = TripWire(after=10)
    with pytest.raises(StagingCancelledError, match="was cancelled; nothing partial was kept"):
        stage_model(tarball, cache, cancel=wire)
    assert wire.checks == wire.after  # stopped at the first check that saw the event
    cache_is_clean(cache)


def test_cancelling_inside_a_big_member_stops_within_a_chunk(tmp_path: Path) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member("big.bin", os.urandom(8 * MIB))])
    cache = tmp_path / "cache"
    wire = TripWire(after=20)  # the hash needs 9 chunk checks; the rest happen mid-member
    with pytest.raises(StagingCancelledError):
        stage_model(tarball, cache, cancel=wire)
    assert wire.checks == wire.after
    cache_is_clean(cache)


def test_staging_in_a_thread_stops_when_its_event_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member(f"f{i}") for i in range(400)])
    cache = tmp_path / "cache"
    started = threading.Event()
    real_makefile = tarfile.TarFile.makefile

    def slow_makefile(self: tarfile.TarFile, tarinfo: tarfile.TarInfo, target: str) -> None:
        assert f".pid{os.getpid()}-" in target  # the temp dir records its owner
        started.set()
        time.sleep(0.02)
        real_makefile(self, tarinfo, target)

    monkeypatch.setattr(tarfile.TarFile, "makefile", slow_makefile)
    cancel = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            stage_model(tarball, cache, cancel=cancel)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(10)
    cancel.set()
    worker.join(2)
    assert not worker.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], StagingCancelledError)
    cache_is_clean(cache)


def test_ctrl_c_during_extraction_removes_the_partial_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member(f"f{i}") for i in range(10)])
    cache = tmp_path / "cache"
    calls: list[str] = []
    real_makefile = tarfile.TarFile.makefile

    def interrupted(self: tarfile.TarFile, tarinfo: tarfile.TarInfo, target: str) -> None:
        calls.append(target)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_makefile(self, tarinfo, target)

    monkeypatch.setattr(tarfile.TarFile, "makefile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stage_model(tarball, cache)
    cache_is_clean(cache)


def test_cancelling_the_async_wrapper_stops_the_worker_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member(f"f{i}") for i in range(400)])
    cache = tmp_path / "cache"
    real_makefile = tarfile.TarFile.makefile
    extracting = threading.Event()
    done: list[str] = []

    def slow_makefile(self: tarfile.TarFile, tarinfo: tarfile.TarInfo, target: str) -> None:
        extracting.set()
        time.sleep(0.02)  # 400 members: 8 s if nothing stopped it
        real_makefile(self, tarinfo, target)
        done.append(target)

    monkeypatch.setattr(tarfile.TarFile, "makefile", slow_makefile)

    async def scenario() -> float:
        task = asyncio.create_task(stage_model_async(tarball, cache))
        while not extracting.is_set():
            await asyncio.sleep(0.005)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - cancelled_at

    took = asyncio.run(scenario())
    assert took < 1.0
    assert len(done) < 100
    cache_is_clean(cache)


# ------------------------------------------------------------------------------------------
# stale temporary directories


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def leftover(cache: Path, owner: str, *, age: float, sub: str = "models") -> Path:
    path = cache / sub / f".0123456789abcdef.{owner}.k3j_x9q2.tmp"
    (path / "deep").mkdir(parents=True)
    (path / "deep" / "weights.bin").write_bytes(b"w" * 1000)
    old = time.time() - age
    os.utime(path, (old, old))
    return path


def test_a_dead_runs_temp_dir_is_swept_and_a_live_ones_kept(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    me = artifacts_cache.owner_tag()
    dead = leftover(cache, f"pid{dead_pid()}-12345", age=3600)
    young_dead = leftover(cache, f"pid{dead_pid()}-1", age=10)
    live = leftover(cache, me, age=3600)
    unowned_old = cache / "models" / ".0123456789abcdef.zz9y8x7w.tmp"
    unowned_old.mkdir()
    os.utime(unowned_old, (time.time() - 3 * 86400,) * 2)
    unowned_recent = cache / "models" / ".fedcba9876543210.aa1b2c3d.tmp"
    unowned_recent.mkdir()
    os.utime(unowned_recent, (time.time() - 3600,) * 2)
    part = cache / "downloads" / f".download.pid{dead_pid()}-7.abcd1234.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half a download")
    os.utime(part, (time.time() - 3600,) * 2)
    staged = cache / "models" / ("a" * 64)
    staged.mkdir()

    removed = sweep_stale(cache)

    assert sorted(removed) == sorted([dead, unowned_old, part])
    for kept in (young_dead, live, unowned_recent, staged):
        assert kept.exists(), kept


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc start times")
def test_a_reused_pid_does_not_keep_a_temp_dir(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    reused = leftover(cache, f"pid{os.getpid()}-1", age=3600)  # our pid, another start time
    assert sweep_stale(cache) == [reused]


def test_staging_sweeps_what_a_killed_run_left(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dead = leftover(cache, f"pid{dead_pid()}-12345", age=3600)
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member("w", b"1")])
    staged = stage_model(tarball, cache)
    assert not dead.exists()
    assert all_paths(cache / "models") == {staged.path.name, f"{staged.path.name}/w"}


# ------------------------------------------------------------------------------------------
# the digest index


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = artifacts_cache._file_sha256

    def counting(label: str, path: Path, cancel: Any) -> str:
        calls.append(path)
        return real(label, path, cancel)

    monkeypatch.setattr(artifacts_cache, "_file_sha256", counting)
    return calls


def test_a_tarball_is_hashed_once_while_it_is_unchanged(tmp_path: Path, hashes: list[Path]) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member("w", b"1")])
    cache = tmp_path / "cache"
    first = stage_model(tarball, cache)
    assert len(hashes) == 1
    assert len(list((cache / "digests").iterdir())) == 1
    for _ in range(3):
        assert stage_model(tarball, cache) == first
    assert len(hashes) == 1  # index hits


def test_a_changed_mtime_hashes_again(tmp_path: Path, hashes: list[Path]) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member("w", b"1")])
    cache = tmp_path / "cache"
    first = stage_model(tarball, cache)
    st = tarball.stat()
    os.utime(tarball, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert stage_model(tarball, cache) == first
    assert len(hashes) == 2
    assert stage_model(tarball, cache) == first
    assert len(hashes) == 2  # the new times were recorded


def test_new_content_behind_the_same_size_and_mtime_is_noticed(
    tmp_path: Path, hashes: list[Path]
) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member("w", b"1")])
    cache = tmp_path / "cache"
    first = stage_model(tarball, cache)
    st = tarball.stat()
    other = make_tar(tmp_path / "other.tar.gz", [file_member("w", b"2")])
    assert other.stat().st_size == st.st_size
    tarball.write_bytes(other.read_bytes())
    os.utime(tarball, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored; ctime is not
    second = stage_model(tarball, cache)
    assert second.digest != first.digest
    assert (second.path / "w").read_bytes() == b"2"
    assert len(hashes) == 2


def test_a_corrupt_index_entry_only_costs_a_hash(tmp_path: Path, hashes: list[Path]) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member("w", b"1")])
    cache = tmp_path / "cache"
    first = stage_model(tarball, cache)
    (entry,) = (cache / "digests").iterdir()
    for garbage in ("{not json", '{"sha256": "../../etc"}', "[]"):
        entry.write_text(garbage)
        assert stage_model(tarball, cache) == first
    assert len(hashes) == 4


def test_a_refused_tarball_records_no_digest(tmp_path: Path) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member("../evil", b"x")])
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactError):
        stage_model(tarball, cache)
    cache_is_clean(cache)
