"""Model artifacts: turn what the user names as "the model" into a directory for /opt/ml/model.

SageMaker extracts ``ModelDataUrl`` (a ``model.tar.gz``) into ``/opt/ml/model`` before the
container starts, or, for uncompressed ``ModelDataSource`` sources, copies one S3 object
(``S3Object``) or the tree below an S3 prefix (``S3Prefix``) there; the container sees it
read-only. This module owns producing the host directory that is bind-mounted there, and the
digest that identifies the model:

* a local ``model.tar.gz`` (or plain ``.tar``) is extracted, safely, into
  ``<cache>/models/<sha256 of the file>``; the extraction is atomic (temp sibling, then
  ``os.rename``) and is reused on the next call instead of being extracted again;
* a local directory is used in place; its digest covers its relative paths and contents;
* ``s3://bucket/key.tar.gz`` is downloaded to ``<cache>/downloads`` and staged like a local
  tarball; ``s3://bucket/prefix/`` copies the tree below the prefix and ``s3://bucket/key``
  copies that one object, both into ``<cache>/models/<digest>``. Downloads are keyed by the
  objects' ETags, so an unchanged S3 model is not downloaded twice.

Every failure a user can cause (a missing path, an archive that is corrupt or would write
outside the model directory, an S3 error) is an :class:`~emulator.errors.ArtifactError` whose
message names the source and says why.

Archive safety: members are checked by the stdlib's ``tarfile`` ``"data"`` filter (no absolute
names, no ``..`` escapes, no links leaving the tree, no device files) plus stricter checks of
our own that also close the known bypasses of that filter: absolute member names are refused
rather than silently made relative, no member may be written through a symlink the archive
created, and a hard link must point at a regular file earlier in the archive.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import importlib
import logging
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from smlocal.emulator.errors import ArtifactError

__all__ = ["S3ClientLike", "StagedModel", "stage_model"]

log = logging.getLogger(__name__)

ACCEPTED = (
    "a model.tar.gz (or .tar) file, a model directory, or an S3 URI "
    "(s3://bucket/model.tar.gz, s3://bucket/prefix/ for a tree, s3://bucket/key for one file)"
)
_TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_CHUNK = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_COMPRESSIONS = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


@dataclass(frozen=True)
class StagedModel:
    """A model ready to be mounted read-only at /opt/ml/model."""

    source: str
    """What the user gave (path or URI), for messages."""
    path: Path
    """Host directory to mount read-only at /opt/ml/model."""
    digest: str
    """``"sha256:<hex>"`` of the artifact's content; identifies the model."""


class S3ClientLike(Protocol):
    """The part of a boto3 S3 client that staging uses (a ``boto3.client("s3")`` fits)."""

    def head_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]: ...

    def list_objects_v2(
        self, *, Bucket: str, Prefix: str, ContinuationToken: str = ...
    ) -> Mapping[str, Any]: ...

    def download_fileobj(self, Bucket: str, Key: str, Fileobj: IO[bytes]) -> None: ...


def stage_model(
    source: str | Path, cache_dir: Path, *, s3_client: S3ClientLike | None = None
) -> StagedModel:
    """Make ``source`` available as a directory to mount read-only at /opt/ml/model.

    ``source`` is a local ``model.tar.gz``/``.tar``, a local directory, or an ``s3://`` URI
    (see the module docstring). Extracted and downloaded artifacts live below ``cache_dir``.
    ``s3_client`` is used for S3 sources; without one a boto3 S3 client is created (from a new
    ``boto3.session.Session``) when first needed, so boto3's usual configuration (credentials,
    ``AWS_ENDPOINT_URL_S3``) applies.

    Raises :class:`ArtifactError` for anything that cannot be staged.
    """
    label = str(source)
    if isinstance(source, str) and "://" in source:
        scheme = source.split("://", 1)[0]
        if scheme.lower() != "s3":
            raise ArtifactError(
                f"model source {label!r}: the {scheme!r} scheme is not supported; "
                f"expected {ACCEPTED}"
            )
        bucket, key = _parse_s3_uri(source)
        return _stage_s3(label, bucket, key, cache_dir, s3_client)
    path = Path(source).expanduser()
    log.info("staging model %s", label)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ArtifactError(f"model source {label!r} does not exist; expected {ACCEPTED}") from None
    except OSError as exc:
        raise ArtifactError(f"model source {label!r} cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        return _stage_directory(label, path)
    if stat.S_ISREG(st.st_mode):
        return _stage_tarball(label, path, cache_dir)
    raise ArtifactError(
        f"model source {label!r} is neither a regular file nor a directory; expected {ACCEPTED}"
    )


# --------------------------------------------------------------------------------------------
# Local tarballs


def _stage_tarball(label: str, path: Path, cache_dir: Path) -> StagedModel:
    hexdigest = _file_sha256(label, path)
    models = _ensure_dir(cache_dir / "models", label)
    target = models / hexdigest
    digest = f"sha256:{hexdigest}"
    if target.is_dir():
        log.info("model %s (%s) is already extracted at %s; reusing it", label, digest, target)
        return StagedModel(source=label, path=target, digest=digest)
    tmp = _make_temp_dir(models, hexdigest, label)
    try:
        log.info("extracting %s into %s", label, target)
        _extract(label, path, tmp)
        _check_links_inside(label, tmp)
        _finish(label, tmp, target)
    finally:
        _remove_tree(tmp)
    return StagedModel(source=label, path=target, digest=digest)


def _file_sha256(label: str, path: Path) -> str:
    sha = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
    except OSError as exc:
        raise ArtifactError(f"model source {label!r} cannot be read: {exc.strerror}") from None
    return sha.hexdigest()


def _open_tar(label: str, path: Path) -> tarfile.TarFile:
    """Open a gzip-compressed or plain tar archive, or explain what the file is instead."""
    try:
        with path.open("rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise ArtifactError(f"model source {label!r} cannot be read: {exc.strerror}") from None
    if not head:
        raise ArtifactError(f"model source {label!r} is an empty file; expected {ACCEPTED}")
    for magic, name in _OTHER_COMPRESSIONS.items():
        if head.startswith(magic):
            raise ArtifactError(
                f"model source {label!r} is a {name}-compressed file; SageMaker expects a "
                f"gzip-compressed tar archive (model.tar.gz) or a plain .tar"
            )
    gzipped = head.startswith(_GZIP_MAGIC)
    try:
        return tarfile.open(path, mode="r:gz" if gzipped else "r:", errorlevel=1)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if gzipped:
            raise ArtifactError(
                f"model source {label!r} is gzip-compressed but is not a readable tar archive "
                f"(corrupt or truncated: {exc})"
            ) from None
        raise ArtifactError(
            f"model source {label!r} is not a tar archive; expected {ACCEPTED}"
        ) from None


class _ThroughLinkError(tarfile.FilterError):
    def __init__(self, tarinfo: tarfile.TarInfo, link: str) -> None:
        self.tarinfo = tarinfo
        self.link = link
        super().__init__(f"{tarinfo.name!r} would be written through the symlink {link!r}")


class _BadHardLinkError(tarfile.FilterError):
    def __init__(self, tarinfo: tarfile.TarInfo) -> None:
        self.tarinfo = tarinfo
        super().__init__(f"{tarinfo.name!r} is a hard link to something not in the archive")


class _NamelessError(tarfile.FilterError):
    def __init__(self, tarinfo: tarfile.TarInfo) -> None:
        self.tarinfo = tarinfo
        super().__init__(f"{tarinfo.name!r} names the destination directory itself")


class _BadSymlinkError(tarfile.FilterError):
    def __init__(self, tarinfo: tarfile.TarInfo) -> None:
        self.tarinfo = tarinfo
        super().__init__(f"{tarinfo.name!r} is a symlink with an empty target")


class _MemberFilter:
    """The ``"data"`` filter plus checks that do not trust the file system's state.

    Remembers what the archive has created so far (by normalised name), so that no member is
    written through a symlink the archive made and hard links only point at earlier regular
    files. Also remembers the member being extracted, for error messages.
    """

    def __init__(self) -> None:
        self.current: tarfile.TarInfo | None = None
        self._symlinks: set[str] = set()
        self._files: set[str] = set()

    def __call__(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        self.current = member
        if member.name.startswith("/"):
            raise tarfile.AbsolutePathError(member)
        filtered = tarfile.data_filter(member, dest)
        name = self._resolve(member, member.name, base=())
        if not name and not member.isdir():
            raise _NamelessError(member)
        if member.issym():
            if not member.linkname:
                raise _BadSymlinkError(member)
            self._resolve(member, member.linkname, base=tuple(name.split("/")[:-1]))
            self._symlinks.add(name)
        elif member.islnk():
            if self._resolve(member, member.linkname, base=()) not in self._files:
                raise _BadHardLinkError(member)
        elif member.isreg():
            self._files.add(name)
        return filtered

    def _resolve(self, member: tarfile.TarInfo, path: str, base: tuple[str, ...]) -> str:
        """Normalise ``path`` (relative to ``base``) without passing through any symlink."""
        parts = list(base)
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise tarfile.OutsideDestinationError(member, path)
                parts.pop()
            else:
                parts.append(part)
            joined = "/".join(parts)
            if joined in self._symlinks:
                raise _ThroughLinkError(member, joined)
        return "/".join(parts)


def _extract(label: str, path: Path, dest: Path) -> None:
    if not hasattr(tarfile, "data_filter"):  # pragma: no cover - Python < 3.11.4
        raise ArtifactError("extracting a model archive safely needs Python 3.11.4 or newer")
    member_filter = _MemberFilter()
    with _open_tar(label, path) as archive:
        try:
            # Safe: every member goes through the "data" filter plus _MemberFilter's checks.
            archive.extractall(dest, filter=member_filter)  # noqa: S202
        except tarfile.FilterError as exc:
            raise ArtifactError(f"cannot extract {label!r}: {_filter_reason(exc)}") from None
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            member = member_filter.current
            after = f" after member {member.name!r}" if member is not None else ""
            raise ArtifactError(
                f"cannot extract {label!r}: the archive is corrupt or truncated{after} ({exc})"
            ) from None
        except OSError as exc:
            member = member_filter.current
            where = f"member {member.name!r}" if member is not None else "the archive"
            raise ArtifactError(
                f"cannot extract {where} of {label!r}: {exc.strerror or exc}"
            ) from None
        except RecursionError:  # tarfile's copy-instead-of-link fallback chasing a link loop
            member = member_filter.current
            where = f"member {member.name!r}" if member is not None else "a member"
            raise ArtifactError(
                f"cannot extract {where} of {label!r}: its link cannot be resolved (loop)"
            ) from None


def _filter_reason(exc: tarfile.FilterError) -> str:
    info: tarfile.TarInfo | None = getattr(exc, "tarinfo", None)
    name = info.name if info is not None else "?"
    link = info.linkname if info is not None else ""
    kind = "hard link" if info is not None and info.islnk() else "symlink"
    if isinstance(exc, tarfile.AbsolutePathError):
        return (
            f"member {name!r} has an absolute path; archive members must be relative to the "
            f"model directory (create the archive with: tar -czf model.tar.gz -C <model dir> .)"
        )
    if isinstance(exc, tarfile.OutsideDestinationError):
        return f"member {name!r} would be extracted outside the model directory"
    if isinstance(exc, tarfile.SpecialFileError):
        return (
            f"member {name!r} is a {_special_kind(info)}; device files, FIFOs and sockets are "
            f"not allowed in a model archive"
        )
    if isinstance(exc, tarfile.AbsoluteLinkError):
        return (
            f"member {name!r} is a {kind} to the absolute path {link!r}; links must be relative "
            f"and stay inside the model directory"
        )
    if isinstance(exc, tarfile.LinkOutsideDestinationError):
        return f"member {name!r} is a {kind} to {link!r}, which is outside the model directory"
    if isinstance(exc, _ThroughLinkError):
        return (
            f"member {name!r} would be written through the archive's own symlink "
            f"{exc.link!r}, which is not allowed"
        )
    if isinstance(exc, _NamelessError):
        return (
            f"member {name!r} is a {_kind(info)} whose name denotes the model directory "
            f"itself, not a path inside it"
        )
    if isinstance(exc, _BadSymlinkError):
        return f"member {name!r} is a symlink with an empty target"
    if isinstance(exc, _BadHardLinkError):
        return (
            f"member {name!r} is a hard link to {link!r}, which is not a regular file earlier "
            f"in the archive"
        )
    return f"member {name!r} is not allowed: {exc}"  # pragma: no cover - future filter errors


def _kind(info: tarfile.TarInfo | None) -> str:
    if info is not None and info.issym():
        return "symlink"
    if info is not None and info.islnk():
        return "hard link"
    if info is not None and info.isreg():
        return "file"
    return _special_kind(info)


def _special_kind(info: tarfile.TarInfo | None) -> str:
    if info is None:  # pragma: no cover
        return "special file"
    if info.ischr():
        return "character device"
    if info.isblk():
        return "block device"
    if info.isfifo():
        return "FIFO"
    return "special file"


# --------------------------------------------------------------------------------------------
# Local directories and trees


def _stage_directory(label: str, path: Path) -> StagedModel:
    root = path.resolve()
    digest = _tree_digest(label, root)
    log.info("using model directory %s as is (%s)", root, digest)
    return StagedModel(source=label, path=root, digest=digest)


def _tree_digest(label: str, root: Path) -> str:
    """sha256 over every entry's kind, relative path and content (or link target), sorted.

    Symlinks are hashed as links, never followed; one that would not resolve inside the
    directory once it is mounted at /opt/ml/model (absolute, or leaving the tree) is refused,
    as are FIFOs, sockets and devices.
    """
    sha = hashlib.sha256(b"smlocal-tree-v1\0")
    unreadable = 0
    for rel, full, st in _walk(label, root):
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            sha.update(b"d\0" + os.fsencode(rel) + b"\0\0")
        elif stat.S_ISLNK(mode):
            target = os.readlink(full)
            _check_dir_link(label, root, rel, target)
            sha.update(b"l\0" + os.fsencode(rel) + b"\0" + os.fsencode(target) + b"\0")
        elif stat.S_ISREG(mode):
            unreadable += 0 if mode & stat.S_IROTH else 1
            sha.update(b"f\0" + os.fsencode(rel) + b"\0" + _content_hash(label, rel, full))
            sha.update(b"\0")
        else:
            raise ArtifactError(
                f"model directory {label!r}: {rel!r} is not a regular file, directory or "
                f"symlink (FIFOs, sockets and devices are not allowed)"
            )
    if unreadable:
        log.warning(
            "model directory %s: %d file(s) are not readable by other users; a container "
            "running as a non-root user may fail to read them",
            label,
            unreadable,
        )
    return f"sha256:{sha.hexdigest()}"


def _walk(label: str, root: Path) -> list[tuple[str, str, os.stat_result]]:
    """(relative posix path, full path, lstat) of every entry, sorted; symlinks not followed."""

    def raise_error(exc: OSError) -> None:
        raise exc

    try:
        entries: list[tuple[str, str, os.stat_result]] = []
        for dirpath, dirnames, filenames in os.walk(root, onerror=raise_error):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                entries.append((rel, full, os.lstat(full)))
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise ArtifactError(
            f"model directory {label!r} cannot be read: {exc.strerror}{where}"
        ) from None
    entries.sort(key=lambda entry: os.fsencode(entry[0]))
    return entries


def _content_hash(label: str, rel: str, full: str) -> bytes:
    sha = hashlib.sha256()
    try:
        with open(full, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
    except OSError as exc:
        raise ArtifactError(
            f"model directory {label!r}: {rel!r} cannot be read: {exc.strerror}"
        ) from None
    return sha.hexdigest().encode()


def _check_dir_link(label: str, root: Path, rel: str, target: str) -> None:
    if os.path.isabs(target):
        raise ArtifactError(
            f"model directory {label!r}: symlink {rel!r} points to the absolute path "
            f"{target!r}, which is outside the model directory (and would not resolve inside "
            f"the container); use a relative link to a file inside the directory"
        )
    depth = rel.count("/")
    parts: list[str] = []
    escapes = False
    for part in target.split("/"):
        if part == "..":
            if parts:
                parts.pop()
            elif depth:
                depth -= 1
            else:
                escapes = True
                break
        elif part not in ("", "."):
            parts.append(part)
    resolved = Path(os.path.realpath(root / rel))
    if escapes or not resolved.is_relative_to(root):
        raise ArtifactError(
            f"model directory {label!r}: symlink {rel!r} -> {target!r} points outside the "
            f"model directory"
        )


def _check_links_inside(label: str, root: Path) -> None:
    """After extraction: every symlink must resolve inside the tree (defence in depth)."""
    real_root = Path(os.path.realpath(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full) and not Path(os.path.realpath(full)).is_relative_to(real_root):
                rel = os.path.relpath(full, root)
                raise ArtifactError(
                    f"cannot extract {label!r}: member {rel!r} is a symlink to "
                    f"{os.readlink(full)!r}, which is outside the model directory"
                )


def _make_readable(root: Path) -> None:
    """Directories a+rx, files a+r: the container may run as a non-root user."""
    # World-readable on purpose: the tree is mounted read-only for a possibly non-root user.
    os.chmod(root, 0o755)  # noqa: S103
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(full, stat.S_IMODE(st.st_mode) | 0o755)  # noqa: S103
            elif stat.S_ISREG(st.st_mode):
                os.chmod(full, stat.S_IMODE(st.st_mode) | 0o444)


# --------------------------------------------------------------------------------------------
# Cache plumbing


def _ensure_dir(path: Path, label: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(
            f"cannot stage {label!r}: cache directory {str(path)!r} cannot be created: "
            f"{exc.strerror}"
        ) from None
    return path


def _make_temp_dir(parent: Path, stem: str, label: str) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=f".{stem[:16]}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise ArtifactError(
            f"cannot stage {label!r}: no temporary directory in {str(parent)!r}: {exc.strerror}"
        ) from None


def _finish(label: str, tmp: Path, target: Path) -> None:
    """Make a finished temporary tree readable and move it into the cache."""
    try:
        _make_readable(tmp)
        _install(tmp, target)
    except OSError as exc:
        raise ArtifactError(
            f"cannot stage {label!r} into the cache at {str(target)!r}: {exc.strerror or exc}"
        ) from None


def _install(tmp: Path, target: Path) -> None:
    """Atomically move a finished tree into place; losing a race to an identical one is fine."""
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():
            raise
        log.debug("%s appeared while staging; using the existing copy", target)
    else:
        log.debug("installed %s", target)


def _remove_tree(path: Path) -> None:
    """Remove a temporary tree (a half-extracted archive, a superseded download)."""
    if not os.path.lexists(path):
        return
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        log.warning("could not remove the temporary directory %s", path)


# --------------------------------------------------------------------------------------------
# S3


def _parse_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, sep, key = rest.partition("/")
    if not bucket or not sep or any(c.isspace() for c in bucket):
        raise ArtifactError(
            f"malformed S3 URI {uri!r}: expected s3://bucket/key (s3://bucket/model.tar.gz, "
            f"s3://bucket/prefix/ or s3://bucket/key)"
        )
    return bucket, key


def _stage_s3(
    label: str, bucket: str, key: str, cache_dir: Path, client: S3ClientLike | None
) -> StagedModel:
    log.info("staging model %s", label)
    s3 = client if client is not None else _default_s3_client(label)
    downloads = _ensure_dir(cache_dir / "downloads", label)
    if key.endswith(_TARBALL_SUFFIXES):
        tarball = _download_tarball(label, s3, bucket, key, downloads)
        return _stage_tarball(label, tarball, cache_dir)
    if key == "" or key.endswith("/"):
        objects = _list_prefix(label, s3, bucket, key)
        kind = "prefix"
    else:
        head = _s3_call(label, "HeadObject", lambda: s3.head_object(Bucket=bucket, Key=key))
        name = posixpath.basename(key)
        objects = [(name, key, str(head.get("ETag", "")), int(head.get("ContentLength", -1)))]
        kind = "object"
    identity = _s3_identity(kind, bucket, key, objects)
    ref = downloads / f"{identity}.ref"
    cached = _read_ref(ref, cache_dir)
    if cached is not None:
        log.info("model %s (%s) is unchanged in S3; reusing %s", label, cached.name, cached)
        return StagedModel(source=label, path=cached, digest=f"sha256:{cached.name}")
    models = _ensure_dir(cache_dir / "models", label)
    tmp = _make_temp_dir(models, identity, label)
    try:
        for rel, obj_key, _etag, size in objects:
            _download_to_tree(label, s3, bucket, obj_key, rel=rel, size=size, root=tmp)
        digest = _tree_digest(label, tmp)
        target = models / digest.removeprefix("sha256:")
        if target.is_dir():
            log.info("model %s (%s) is already staged at %s; reusing it", label, digest, target)
        else:
            _finish(label, tmp, target)
            log.info("staged %s at %s (%s)", label, target, digest)
    finally:
        _remove_tree(tmp)
    _write_atomically(ref, f"{digest}\n".encode(), label)
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


def _write_atomically(path: Path, data: bytes, label: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # the cache entry is an optimisation; staging itself succeeded
        log.warning("cannot record %s in the download cache: %s", label, exc.strerror)


def _download_tarball(label: str, s3: S3ClientLike, bucket: str, key: str, downloads: Path) -> Path:
    head = _s3_call(label, "HeadObject", lambda: s3.head_object(Bucket=bucket, Key=key))
    size = int(head.get("ContentLength", -1))
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
            _download(label, s3, bucket, key, fh)
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
        return tempfile.mkstemp(prefix=".download.", suffix=".part", dir=directory)
    except OSError as exc:
        raise ArtifactError(
            f"cannot download {label!r} into {str(directory)!r}: {exc.strerror}"
        ) from None


def _download(label: str, s3: S3ClientLike, bucket: str, key: str, fh: IO[bytes]) -> None:
    log.debug("GET s3://%s/%s", bucket, key)
    try:
        s3.download_fileobj(bucket, key, fh)
    except Exception as exc:
        raise _s3_error(label, f"GetObject s3://{bucket}/{key}", exc) from None


def _check_size(label: str, key: str, path: Path, expected: int) -> None:
    actual = path.stat().st_size
    if expected >= 0 and actual != expected:
        raise ArtifactError(
            f"cannot read {label!r}: downloaded {actual} bytes of {key!r} but S3 reported "
            f"{expected}; the object changed or the download was cut short"
        )


def _list_prefix(
    label: str, s3: S3ClientLike, bucket: str, prefix: str
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
    label: str, s3: S3ClientLike, bucket: str, key: str, *, rel: str, size: int, root: Path
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
        _download(label, s3, bucket, key, fh)
    _check_size(label, key, dest, size)
