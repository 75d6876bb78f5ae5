"""Safe, bounded, interruptible extraction of a model tarball into a directory.

This module owns reading a ``model.tar.gz`` (or plain ``.tar``) and writing its members below
one destination directory, and nothing else (where that directory lives, and what happens to it
afterwards, is :mod:`smlocal.emulator.artifacts_cache`'s business).

Archive safety: members are checked by the stdlib's ``tarfile`` ``"data"`` filter (no absolute
names, no ``..`` escapes, no links leaving the tree, no device files) plus stricter checks of
our own that also close the known bypasses of that filter: absolute member names are refused
rather than silently made relative, no member may be written through a symlink the archive
created, and a hard link must point at a regular file earlier in the archive.

Bounds (:class:`~smlocal.emulator.artifacts_limits.StagingLimits`): before a member is written
its declared size is added to the running total, which must stay within the size cap and, once
past the ratio guard's minimum, within ``max_ratio`` times the archive's size; the member count
is capped too. Declared sizes are what ``tarfile`` writes, so no byte beyond a limit is written.

Cancellation: the caller's ``threading.Event`` is checked before every member and on every read
from the archive file (each compressed chunk), so a set event stops extraction within one chunk.
"""

from __future__ import annotations

import gzip
import posixpath
import tarfile
import threading
import zlib
from pathlib import Path
from typing import IO

from smlocal.emulator.artifacts_limits import StagingLimits, check_cancelled
from smlocal.emulator.errors import ArtifactError

__all__ = ["ACCEPTED", "extract_tarball"]

ACCEPTED = (
    "a model.tar.gz (or .tar) file, a model directory, or an S3 URI "
    "(s3://bucket/model.tar.gz, s3://bucket/prefix/ for a tree, s3://bucket/key for one file)"
)
_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_COMPRESSIONS = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def extract_tarball(
    label: str,
    path: Path,
    dest: Path,
    *,
    limits: StagingLimits,
    cancel: threading.Event | None = None,
) -> None:
    """Extract the archive at ``path`` into the existing, empty directory ``dest``.

    Raises :class:`ArtifactError` (an unsafe member, a corrupt archive, a limit exceeded) or
    :class:`~smlocal.emulator.artifacts_limits.StagingCancelledError`; ``dest`` may then hold a
    partial tree, which the caller removes.
    """
    if not hasattr(tarfile, "data_filter"):  # pragma: no cover - Python < 3.11.4
        raise ArtifactError("extracting a model archive safely needs Python 3.11.4 or newer")
    try:
        archive_bytes = path.stat().st_size
        raw = path.open("rb")
    except OSError as exc:
        raise ArtifactError(f"model source {label!r} cannot be read: {exc.strerror}") from None
    with raw:
        member_filter = _MemberFilter(label, limits, archive_bytes, cancel)
        reader = _CheckedReader(raw, label, cancel)
        with _open_tar(label, raw, reader) as archive:
            _extract_all(label, archive, dest, member_filter)


class _CheckedReader:
    """The archive file, checking for cancellation on every read (one compressed chunk)."""

    def __init__(self, raw: IO[bytes], label: str, cancel: threading.Event | None) -> None:
        self._raw = raw
        self._label = label
        self._cancel = cancel
        self.name = getattr(raw, "name", None)

    def read(self, size: int = -1) -> bytes:
        check_cancelled(self._label, self._cancel)
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """The caller owns (and closes) the underlying file."""


def _open_tar(label: str, raw: IO[bytes], reader: _CheckedReader) -> tarfile.TarFile:
    """Open a gzip-compressed or plain tar archive, or explain what the file is instead."""
    try:
        head = raw.read(6)
        raw.seek(0)
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
    fileobj: IO[bytes] = reader  # type: ignore[assignment]  # duck-typed file for tarfile
    try:
        return tarfile.open(fileobj=fileobj, mode="r:gz" if gzipped else "r:", errorlevel=1)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if gzipped:
            raise ArtifactError(
                f"model source {label!r} is gzip-compressed but is not a readable tar archive "
                f"(corrupt or truncated: {exc})"
            ) from None
        raise ArtifactError(
            f"model source {label!r} is not a tar archive; expected {ACCEPTED}"
        ) from None


def _extract_all(
    label: str, archive: tarfile.TarFile, dest: Path, member_filter: _MemberFilter
) -> None:
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
        raise ArtifactError(f"cannot extract {where} of {label!r}: {exc.strerror or exc}") from None
    except RecursionError:  # tarfile's copy-instead-of-link fallback chasing a link loop
        member = member_filter.current
        where = f"member {member.name!r}" if member is not None else "a member"
        raise ArtifactError(
            f"cannot extract {where} of {label!r}: its link cannot be resolved (loop)"
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
    files. Also remembers the member being extracted, for error messages, counts members and
    declared bytes against the limits, and checks for cancellation before each member.
    """

    def __init__(
        self,
        label: str,
        limits: StagingLimits,
        archive_bytes: int,
        cancel: threading.Event | None,
    ) -> None:
        self.current: tarfile.TarInfo | None = None
        self._symlinks: set[str] = set()
        self._files: dict[str, int] = {}
        self._label = label
        self._limits = limits
        self._archive_bytes = archive_bytes
        self._cancel = cancel
        self._count = 0
        self._total = 0

    def __call__(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        check_cancelled(self._label, self._cancel)
        self.current = member
        self._count += 1
        self._limits.check_members(self._label, self._count)
        self._add_bytes(member)
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
            self._files[name] = member.size
        return filtered

    def _add_bytes(self, member: tarfile.TarInfo) -> None:
        """Count a file's declared size, a hard link's at its target's (tarfile may copy it)."""
        if member.isreg():
            size = member.size
        elif member.islnk():
            size = self._files.get(posixpath.normpath(member.linkname), 0)
        else:
            return
        self._total += size
        self._limits.check_size(self._label, self._total)
        self._limits.check_ratio(self._label, self._total, self._archive_bytes)

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
