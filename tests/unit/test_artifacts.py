"""Staging local model artifacts: tarballs (safe, cached extraction) and directories."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from smlocal.emulator.artifacts import StagedModel, stage_model
from smlocal.emulator.errors import ArtifactError

Member = tuple[tarfile.TarInfo, bytes | None]


def file_member(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def dir_member(name: str, mode: int = 0o755) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    return info, None


def link_member(name: str, target: str, *, hard: bool = False) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def special_member(name: str, kind: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info, None


def make_tar(path: Path, members: Iterable[Member], *, gz: bool = True) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def model_members() -> list[Member]:
    return [
        dir_member("code", mode=0o700),
        file_member("code/inference.py", b"print('hi')\n", mode=0o600),
        file_member("model.joblib", b"\x00\x01weights"),
        dir_member("sub/deeper"),
        file_member("sub/deeper/vocab.txt", b"a\nb\n", mode=0o400),
        link_member("latest.joblib", "model.joblib"),
        link_member("sub/deeper/up.joblib", "../../model.joblib"),
        file_member("a.bin", b"same"),
        link_member("b.bin", "a.bin", hard=True),
    ]


def all_paths(root: Path) -> set[str]:
    return {
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    }


# ------------------------------------------------------------------------------------------
# tarballs


def test_tarball_is_extracted_readable_and_digested(tmp_path: Path) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", model_members())
    cache = tmp_path / "cache"

    staged = stage_model(str(tarball), cache)

    hexdigest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert staged == StagedModel(
        source=str(tarball), path=cache / "models" / hexdigest, digest=f"sha256:{hexdigest}"
    )
    root = staged.path
    assert (root / "code" / "inference.py").read_text() == "print('hi')\n"
    assert (root / "latest.joblib").read_bytes() == b"\x00\x01weights"
    assert (root / "sub" / "deeper" / "up.joblib").read_bytes() == b"\x00\x01weights"
    assert os.readlink(root / "latest.joblib") == "model.joblib"
    assert (root / "b.bin").stat().st_ino == (root / "a.bin").stat().st_ino
    for rel in all_paths(root) | {"."}:
        st_ = os.lstat(root / rel)
        if stat.S_ISDIR(st_.st_mode):
            assert st_.st_mode & 0o555 == 0o555, rel
        elif stat.S_ISREG(st_.st_mode):
            assert st_.st_mode & 0o444 == 0o444, rel
            assert not st_.st_mode & 0o022, rel  # never group/other-writable
    # nothing else was left behind in the cache (no temp dirs)
    assert sorted(p.name for p in (cache / "models").iterdir()) == [hexdigest]


def test_plain_tar_and_path_object_are_accepted(tmp_path: Path) -> None:
    tarball = make_tar(tmp_path / "model.tar", [file_member("m.bin", b"1")], gz=False)
    staged = stage_model(tarball, tmp_path / "cache")
    assert (staged.path / "m.bin").read_bytes() == b"1"
    assert staged.source == str(tarball)


def test_second_stage_reuses_the_extraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", model_members())
    cache = tmp_path / "cache"
    first = stage_model(tarball, cache)
    mtimes = {rel: os.lstat(first.path / rel).st_mtime_ns for rel in all_paths(first.path)}
    (first.path / "marker").write_text("left by the first run")

    calls: list[object] = []

    def no_extraction(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("extracted again")

    monkeypatch.setattr(tarfile.TarFile, "extractall", no_extraction)
    second = stage_model(str(tarball), cache)

    assert second == first
    assert calls == []
    assert (second.path / "marker").exists()
    assert {rel: os.lstat(first.path / rel).st_mtime_ns for rel in mtimes} == mtimes


def test_same_content_elsewhere_shares_the_cache_entry(tmp_path: Path) -> None:
    a = make_tar(tmp_path / "a.tar.gz", [file_member("w", b"1")])
    b = tmp_path / "b.tar.gz"
    b.write_bytes(a.read_bytes())
    c = make_tar(tmp_path / "c.tar.gz", [file_member("w", b"2")])
    cache = tmp_path / "cache"
    assert stage_model(a, cache).path == stage_model(b, cache).path
    assert stage_model(c, cache).digest != stage_model(a, cache).digest


def test_a_concurrent_stager_winning_the_rename_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member("w", b"1")])
    cache = tmp_path / "cache"
    target = cache / "models" / hashlib.sha256(tarball.read_bytes()).hexdigest()
    real_rename = os.rename

    def racing_rename(src: str, dst: str) -> None:
        Path(dst).mkdir()  # another process finished first
        (Path(dst) / "w").write_bytes(b"1")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", racing_rename)
    staged = stage_model(tarball, cache)
    assert staged.path == target
    assert all_paths(cache / "models") == {target.name, f"{target.name}/w"}


UNSAFE = [
    pytest.param([file_member("/etc/evil", b"x")], "'/etc/evil' has an absolute path", id="abs"),
    pytest.param(
        [file_member("../evil", b"x")],
        "'../evil' would be extracted outside the model directory",
        id="dotdot",
    ),
    pytest.param(
        [dir_member("a"), file_member("a/../../evil", b"x")],
        "'a/../../evil' would be extracted outside the model directory",
        id="nested-dotdot",
    ),
    pytest.param(
        [link_member("passwd", "/etc/passwd")],
        "'passwd' is a symlink to the absolute path '/etc/passwd'",
        id="symlink-abs",
    ),
    pytest.param(
        [link_member("up", "../../outside")],
        "'up' is a symlink to '../../outside', which is outside the model directory",
        id="symlink-out",
    ),
    pytest.param(
        [link_member("h", "../../outside", hard=True)],
        "'h' is a hard link to '../../outside', which is outside the model directory",
        id="hardlink-out",
    ),
    pytest.param(
        [link_member("h", "/etc/passwd", hard=True)],
        "'h' is a hard link to the absolute path '/etc/passwd'",
        id="hardlink-abs",
    ),
    pytest.param(
        [special_member("null", tarfile.CHRTYPE)], "'null' is a character device", id="chardev"
    ),
    pytest.param([special_member("sda", tarfile.BLKTYPE)], "'sda' is a block device", id="blk"),
    pytest.param([special_member("pipe", tarfile.FIFOTYPE)], "'pipe' is a FIFO", id="fifo"),
    pytest.param(
        [dir_member("d"), link_member("lnk", "d"), file_member("lnk/x", b"x")],
        "'lnk/x' would be written through the archive's own symlink 'lnk'",
        id="through-own-symlink",
    ),
    pytest.param(
        [link_member("a/..", "x")],
        "'a/..' is a symlink whose name denotes the model directory itself",
        id="nameless-symlink",
    ),
    pytest.param(  # found by Hypothesis: sent tarfile's link fallback into endless recursion
        [link_member("", "")],
        "'' is a symlink whose name denotes the model directory itself",
        id="empty-symlink",
    ),
    pytest.param(
        [link_member("h", "later", hard=True), file_member("later", b"x")],
        "'h' is a hard link to 'later', which is not a regular file earlier in the archive",
        id="hardlink-forward",
    ),
]


@pytest.mark.parametrize(("members", "reason"), UNSAFE)
def test_unsafe_member_is_refused_and_nothing_is_left(
    tmp_path: Path, members: list[Member], reason: str
) -> None:
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    tarball = make_tar(work / "model.tar.gz", [file_member("ok.txt", b"fine"), *members])
    cache = work / "cache"
    before = all_paths(tmp_path)

    with pytest.raises(ArtifactError) as err:
        stage_model(tarball, cache)

    message = str(err.value)
    assert str(tarball) in message
    assert reason in message
    assert list((cache / "models").iterdir()) == []  # the half-extracted temp dir is gone
    assert all_paths(tmp_path) - before == {"a/b/c/cache", "a/b/c/cache/models"}


def test_symlink_chain_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    # each link stays inside on its own; together they would lead outside
    tarball = make_tar(
        tmp_path / "model.tar.gz",
        [dir_member("a"), link_member("a/b", ".."), link_member("c", "a/b/..")],
    )
    with pytest.raises(ArtifactError, match=r"member 'c' is a symlink to 'a/b/\.\.', which is out"):
        stage_model(tarball, tmp_path / "cache")


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    good = make_tar(tmp_path / "good.tar.gz", [file_member("big", os.urandom(200_000))])
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="corrupt or truncated") as err:
        stage_model(bad, tmp_path / "cache")
    assert str(bad) in str(err.value)
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_corrupt_gzip_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 64)
    with pytest.raises(ArtifactError, match="gzip-compressed but is not a readable tar"):
        stage_model(bad, tmp_path / "cache")


def test_gzip_of_something_that_is_not_a_tar_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(gzip.compress(b"just some text, not a tar archive\n" * 40))
    with pytest.raises(ArtifactError, match="gzip-compressed but is not a readable tar") as err:
        stage_model(bad, tmp_path / "cache")
    assert str(bad) in str(err.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"weights, not an archive\n", "is not a tar archive; expected a model.tar.gz"),
        (b"", "is an empty file"),
        (b"BZh91AY&SY" + b"\0" * 20, "bzip2-compressed"),
        (b"PK\x03\x04" + b"\0" * 600, "is not a tar archive"),
    ],
)
def test_file_that_is_not_a_tarball_is_refused(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=match):
        stage_model(path, tmp_path / "cache")


def test_member_that_cannot_be_written_names_the_member(tmp_path: Path) -> None:
    long_name = "x" * 300  # longer than any file system's NAME_MAX
    tarball = make_tar(tmp_path / "model.tar.gz", [file_member(long_name, b"x")])
    with pytest.raises(ArtifactError, match=f"member '{long_name}'.*File name too long"):
        stage_model(tarball, tmp_path / "cache")


# ------------------------------------------------------------------------------------------
# directories


def make_dir_model(root: Path) -> Path:
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text("print('hi')\n")
    (root / "model.bin").write_bytes(b"\x00weights")
    (root / "empty").mkdir()
    os.symlink("model.bin", root / "latest.bin")
    os.symlink("../model.bin", root / "code" / "model.bin")
    return root


def test_directory_is_used_in_place_with_a_stable_digest(tmp_path: Path) -> None:
    root = make_dir_model(tmp_path / "model")
    cache = tmp_path / "cache"
    first = stage_model(str(root), cache)
    assert first.path == root.resolve()
    assert first.source == str(root)
    assert first.digest.startswith("sha256:") and len(first.digest) == 7 + 64
    assert not cache.exists()  # nothing was copied
    assert stage_model(root, cache).digest == first.digest

    copy = make_dir_model(tmp_path / "elsewhere" / "copy")
    assert stage_model(copy, cache).digest == first.digest  # the location does not count
    os.chmod(copy / "model.bin", 0o600)
    assert stage_model(copy, cache).digest == first.digest  # nor do permissions


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "model.bin").write_bytes(b"\x00weightz"),
        lambda r: (r / "new.txt").write_text(""),
        lambda r: (r / "model.bin").rename(r / "model2.bin"),
        lambda r: (r / "empty" / "dir").mkdir(),
        lambda r: (r / "latest.bin").unlink() or os.symlink("code/inference.py", r / "latest.bin"),
    ],
    ids=["content", "added", "renamed", "new-dir", "relinked"],
)
def test_directory_digest_changes_with_the_content(tmp_path: Path, change: object) -> None:
    root = make_dir_model(tmp_path / "model")
    before = stage_model(root, tmp_path / "cache").digest
    change(root)  # type: ignore[operator]
    assert stage_model(root, tmp_path / "cache").digest != before


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("/etc/passwd", "symlink 'code/evil' points to the absolute path '/etc/passwd'"),
        ("../../outside.txt", "symlink 'code/evil' -> '../../outside.txt' points outside"),
        ("../../model/model.bin", "symlink 'code/evil' -> '../../model/model.bin' points out"),
    ],
)
def test_directory_symlink_out_of_the_tree_is_refused(
    tmp_path: Path, target: str, match: str
) -> None:
    root = make_dir_model(tmp_path / "model")
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(target, root / "code" / "evil")
    with pytest.raises(ArtifactError, match=match):
        stage_model(root, tmp_path / "cache")


def test_directory_with_a_fifo_is_refused(tmp_path: Path) -> None:
    root = make_dir_model(tmp_path / "model")
    os.mkfifo(root / "pipe")
    with pytest.raises(ArtifactError, match="'pipe' is not a regular file"):
        stage_model(root, tmp_path / "cache")


# ------------------------------------------------------------------------------------------
# what is not a model source


def test_missing_path_says_what_is_accepted(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tar.gz"
    with pytest.raises(ArtifactError) as err:
        stage_model(missing, tmp_path / "cache")
    message = str(err.value)
    assert f"'{missing}' does not exist" in message
    assert "model.tar.gz" in message and "directory" in message and "s3://" in message


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("http://example.com/model.tar.gz", "the 'http' scheme is not supported; expected"),
        ("file:///tmp/model.tar.gz", "the 'file' scheme is not supported"),
        ("gs://bucket/model.tar.gz", "the 'gs' scheme is not supported"),
        ("s3://", "malformed S3 URI 's3://'"),
        ("s3://bucket", "malformed S3 URI 's3://bucket'"),
        ("s3:///key.tar.gz", "malformed S3 URI"),
    ],
)
def test_unsupported_or_malformed_uri(tmp_path: Path, source: str, match: str) -> None:
    with pytest.raises(ArtifactError, match=match):
        stage_model(source, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


# ------------------------------------------------------------------------------------------
# property: whatever member names a user puts in an archive, nothing lands outside


SEGMENTS = st.one_of(
    st.sampled_from(["..", ".", "", "a", "b", "model.bin", "ü", "日本語", "x y", "\u202ertl", "~"]),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
        min_size=1,
        max_size=8,
    ),
)
NAMES = st.builds(
    lambda lead, parts: lead + "/".join(parts),
    st.sampled_from(["", "", "/", "./"]),
    st.lists(SEGMENTS, min_size=1, max_size=5),
)
MEMBERS = st.lists(
    st.one_of(
        st.builds(lambda n, d: file_member(n, d.encode()), NAMES, st.text(max_size=5)),
        st.builds(dir_member, NAMES),
        st.builds(link_member, NAMES, NAMES),
        st.builds(lambda n, t: link_member(n, t, hard=True), NAMES, NAMES),
    ),
    min_size=1,
    max_size=6,
)
DEPTH = 8  # deeper than the number of ".." a generated name can hold outside one tree


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(members=MEMBERS)
def test_member_names_never_escape(members: list[Member]) -> None:
    with tempfile.TemporaryDirectory() as top:
        work = Path(top).joinpath(*[f"d{i}" for i in range(DEPTH)])
        work.mkdir(parents=True)
        tarball = work / "model.tar.gz"
        try:
            make_tar(tarball, members)
        except (ValueError, UnicodeError):
            assume(False)  # tarfile itself cannot write this name
        before = all_paths(Path(top))

        try:
            staged = stage_model(tarball, work / "cache")
        except ArtifactError:
            staged = None
        event("refused" if staged is None else "staged")

        after = all_paths(Path(top))
        models = f"{os.path.relpath(work, top)}/cache/models"
        digests = f"{os.path.relpath(work, top)}/cache/digests"  # the tarball digest index
        new = after - before
        assert new <= {str(Path(models).parent), models} | {
            p for p in new if p.startswith((models + "/", digests))
        }
        if staged is None:
            assert list((work / "cache" / "models").iterdir()) == []
            return
        root = staged.path.resolve()
        for rel in all_paths(staged.path):
            assert Path(os.path.realpath(staged.path / rel)).is_relative_to(root), rel
