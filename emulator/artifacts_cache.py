"""The model cache: its layout, atomic installs, stale-temp sweeping, and staging a local tarball.

Layout below the cache directory::

    models/<sha256>/          a staged model (an extracted tarball or an S3 tree), read-only use
    models/.<id>.pid<P>-<T>.<rand>.tmp/    a tree being built by process P (start time T)
    downloads/                S3 downloads and their ``.ref`` files (see artifacts_s3)
    digests/<key>.json        the sha256 of a local tarball, keyed by its path, size and times

This module owns that layout. A tree is built in a temporary sibling and moved into place with
``os.rename``, so a staged model is complete or absent. A temporary entry records its owner (pid
and process start time) in its name; :func:`sweep_stale` removes the ones whose owner is gone
(a SIGKILLed run) once they are a few minutes old. :func:`stage_tarball` hashes a tarball once
per (path, size, mtime, ctime, inode): the digest is kept in ``digests/`` after a successful
staging and reused while all of those are unchanged; anything different hashes the file again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from smlocal.emulator.artifacts_limits import StagingLimits, check_cancelled
from smlocal.emulator.artifacts_tar import extract_tarball
from smlocal.emulator.artifacts_tree import check_links_inside, make_readable
from smlocal.emulator.errors import ArtifactError

__all__ = [
    "STALE_AFTER_SECONDS",
    "StagedModel",
    "ensure_dir",
    "finish",
    "make_temp_dir",
    "owner_tag",
    "remove_tree",
    "stage_tarball",
    "sweep_stale",
    "tag_alive",
    "write_atomically",
]

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
STALE_AFTER_SECONDS = 5 * 60
"""A temporary entry whose owner is gone is removed once it is this old."""
_UNOWNED_STALE_AFTER_SECONDS = 24 * 3600
"""Temporary entries named before owners were recorded: removed after a day."""
_OWNED = re.compile(r"\.pid(\d+)-(\d+)\.[A-Za-z0-9_]+\.(?:tmp|part)$")
_TEMP = re.compile(r"^\..+\.(?:tmp|part)$")


@dataclass(frozen=True)
class StagedModel:
    """A model ready to be mounted read-only at /opt/ml/model."""

    source: str
    """What the user gave (path or URI), for messages."""
    path: Path
    """Host directory to mount read-only at /opt/ml/model."""
    digest: str
    """``"sha256:<hex>"`` of the artifact's content; identifies the model."""


# --------------------------------------------------------------------------------------------
# Local tarballs


def stage_tarball(
    label: str,
    path: Path,
    cache_dir: Path,
    *,
    limits: StagingLimits,
    cancel: threading.Event | None = None,
) -> StagedModel:
    """Extract a tarball into ``<cache>/models/<sha256>`` (or reuse an earlier extraction)."""
    sweep_stale(cache_dir)
    hexdigest, index_entry = _indexed_sha256(label, path, cache_dir, cancel)
    models = ensure_dir(cache_dir / "models", label)
    target = models / hexdigest
    digest = f"sha256:{hexdigest}"
    if target.is_dir():
        log.info("model %s (%s) is already extracted at %s; reusing it", label, digest, target)
    else:
        tmp = make_temp_dir(models, hexdigest, label)
        try:
            log.info("extracting %s into %s", label, target)
            extract_tarball(label, path, tmp, limits=limits, cancel=cancel)
            check_links_inside(label, tmp)
            check_cancelled(label, cancel)
            finish(label, tmp, target)
        finally:
            remove_tree(tmp)
    if index_entry is not None:
        _record_digest(cache_dir, index_entry, label)
    return StagedModel(source=label, path=target, digest=digest)


def _index_key(path: Path, st: os.stat_result) -> tuple[str, dict[str, object]]:
    real = os.path.realpath(path)
    key = hashlib.sha256(os.fsencode(real)).hexdigest()[:32]
    return key, {
        "path": real,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "ino": st.st_ino,
        "dev": st.st_dev,
    }


def _indexed_sha256(
    label: str, path: Path, cache_dir: Path, cancel: threading.Event | None
) -> tuple[str, dict[str, object] | None]:
    """The file's sha256 from the digest index, or hashed; and the entry to record (if any)."""
    try:
        before = path.stat()
    except OSError as exc:
        raise ArtifactError(f"model source {label!r} cannot be read: {exc.strerror}") from None
    key, identity = _index_key(path, before)
    index_file = cache_dir / "digests" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        entry = json.loads(index_file.read_text())
        hexdigest = entry.pop("sha256", None) if isinstance(entry, dict) else None
        if entry == identity and isinstance(hexdigest, str) and _is_hex64(hexdigest):
            log.debug("digest of %s from the index (%s unchanged)", label, identity)
            return hexdigest, None
    hexdigest = _file_sha256(label, path, cancel)
    with contextlib.suppress(OSError):
        if _index_key(path, path.stat())[1] == identity:  # unchanged while it was read
            return hexdigest, {**identity, "sha256": hexdigest, "key": key}
    return hexdigest, None


def _record_digest(cache_dir: Path, entry: dict[str, object], label: str) -> None:
    fields = dict(entry)
    key = str(fields.pop("key"))
    try:
        index_dir = cache_dir / "digests"
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # the index is an optimisation; staging itself succeeded
        log.warning("cannot record the digest of %s: %s", label, exc.strerror)
        return
    write_atomically(index_dir / f"{key}.json", json.dumps(fields).encode(), label)


def _is_hex64(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _file_sha256(label: str, path: Path, cancel: threading.Event | None) -> str:
    sha = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                check_cancelled(label, cancel)
                sha.update(chunk)
    except OSError as exc:
        raise ArtifactError(f"model source {label!r} cannot be read: {exc.strerror}") from None
    return sha.hexdigest()


# --------------------------------------------------------------------------------------------
# Temporary entries and their owners


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (Linux), or 0 where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return 0


def owner_tag() -> str:
    """``pid<P>-<T>``: this process, for temporary names (see :func:`sweep_stale`)."""
    pid = os.getpid()
    return f"pid{pid}-{_start_time(pid)}"


def tag_alive(tag: str) -> bool:
    """Whether the process an :func:`owner_tag` names still runs (True if it cannot tell)."""
    match = re.fullmatch(r"pid(\d+)-(\d+)", tag)
    return match is None or _owner_alive(int(match[1]), int(match[2]))


def _owner_alive(pid: int, start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:  # pragma: no cover - e.g. a pid out of range
        return False
    if start:
        current = _start_time(pid)
        if current and current != start:
            return False  # the pid was reused by another process
    return True


def sweep_stale(cache_dir: Path, *, min_age: float = STALE_AFTER_SECONDS) -> list[Path]:
    """Remove temporary entries of processes that are gone; returns what was removed.

    Looks at ``models/`` and ``downloads/``. An entry is removed when it is at least
    ``min_age`` seconds old and the process recorded in its name is no longer running (or its
    pid now belongs to a process started later); an entry without a recorded owner (named by
    an older smlocal) when it is a day old.
    """
    removed: list[Path] = []
    now = time.time()
    for sub in ("models", "downloads", "digests"):
        try:
            entries = list(os.scandir(cache_dir / sub))
        except OSError:
            continue
        for entry in entries:
            if not _TEMP.match(entry.name):
                continue
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            owned = _OWNED.search(entry.name)
            if owned is not None:
                stale = age >= min_age and not _owner_alive(int(owned[1]), int(owned[2]))
            else:
                stale = age >= max(min_age, _UNOWNED_STALE_AFTER_SECONDS)
            if not stale:
                continue
            path = Path(entry.path)
            log.info("removing %s, left by a staging run that is gone", path)
            if entry.is_dir(follow_symlinks=False):
                remove_tree(path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            if not os.path.lexists(path):
                removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------
# Cache plumbing


def ensure_dir(path: Path, label: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(
            f"cannot stage {label!r}: cache directory {str(path)!r} cannot be created: "
            f"{exc.strerror}"
        ) from None
    return path


def make_temp_dir(parent: Path, stem: str, label: str) -> Path:
    try:
        prefix = f".{stem[:16]}.{owner_tag()}."
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    except OSError as exc:
        raise ArtifactError(
            f"cannot stage {label!r}: no temporary directory in {str(parent)!r}: {exc.strerror}"
        ) from None


def finish(label: str, tmp: Path, target: Path) -> None:
    """Make a finished temporary tree readable and move it into the cache."""
    try:
        make_readable(tmp)
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


def remove_tree(path: Path) -> None:
    """Remove a temporary tree (a half-extracted archive, a superseded download)."""
    if not os.path.lexists(path):
        return
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        log.warning("could not remove the temporary directory %s", path)


def write_atomically(path: Path, data: bytes, label: str) -> None:
    """Write a small cache record (a ``.ref``, a digest); failing only logs a warning."""
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{owner_tag()}.", suffix=".part", dir=path.parent
        )
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # the cache entry is an optimisation; staging itself succeeded
        log.warning("cannot record %s in the cache: %s", label, exc.strerror)
