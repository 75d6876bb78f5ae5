"""Model directories: their content digest, and the checks and permissions a mounted tree needs.

This module owns walking a model tree on the host: :func:`tree_digest` identifies a directory
model (or a tree staged from an S3 prefix) by its relative paths, kinds and contents;
:func:`check_links_inside` re-checks an extracted tree's symlinks (defence in depth after the
archive filter); :func:`make_readable` opens a finished tree to the container's possibly
non-root user. It never writes outside the tree it is given.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

from smlocal.emulator.errors import ArtifactError

__all__ = ["check_links_inside", "make_readable", "tree_digest"]

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024


def tree_digest(label: str, root: Path) -> str:
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


def check_links_inside(label: str, root: Path) -> None:
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


def make_readable(root: Path) -> None:
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
