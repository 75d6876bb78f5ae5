"""Model artifacts: turn what the user names as "the model" into a directory for /opt/ml/model.

SageMaker extracts ``ModelDataUrl`` (a ``model.tar.gz``) into ``/opt/ml/model`` before the
container starts, or, for uncompressed ``ModelDataSource`` sources, copies one S3 object
(``S3Object``) or the tree below an S3 prefix (``S3Prefix``) there; the container sees it
read-only. This module is the entry point (:func:`stage_model`, :func:`stage_model_async`) that
produces the host directory that is bind-mounted there, and the digest that identifies the model:

* a local ``model.tar.gz`` (or plain ``.tar``) is extracted, safely, into
  ``<cache>/models/<sha256 of the file>``; the extraction is atomic (temp sibling, then
  ``os.rename``) and is reused on the next call instead of being extracted again; the file's
  sha256 is computed once per (path, size, mtime) — see :mod:`.artifacts_cache`;
* a local directory is used in place; its digest covers its relative paths and contents;
* ``s3://bucket/key.tar.gz`` is downloaded to ``<cache>/downloads`` and staged like a local
  tarball; ``s3://bucket/prefix/`` copies the tree below the prefix and ``s3://bucket/key``
  copies that one object, both into ``<cache>/models/<digest>`` — see :mod:`.artifacts_s3`.

Every failure a user can cause (a missing path, an archive that is corrupt, would write outside
the model directory or expands beyond a limit, an S3 error) is an
:class:`~emulator.errors.ArtifactError` whose message names the source and says why; nothing
partial is left in the cache. Limits (:class:`StagingLimits`): 30 GiB expanded (a SageMaker
hosting instance's default ML storage volume; ``SMLOCAL_MAX_MODEL_BYTES``), 200x compression
once past 256 MiB, 1,000,000 members. Staging stops within one archive chunk once the caller's
``cancel`` event is set (or the :func:`stage_model_async` task is cancelled), removing its
temporary directory; temporary directories of killed runs are swept at the next staging.

The parts, one job each: :mod:`.artifacts_tar` (safe, bounded extraction),
:mod:`.artifacts_tree` (directory digests and permissions), :mod:`.artifacts_cache` (the cache
layout, atomic installs, the digest index, the stale sweep), :mod:`.artifacts_s3` (S3),
:mod:`.artifacts_limits` (limits and cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import stat
import threading
from collections.abc import Mapping
from pathlib import Path

from smlocal.emulator.artifacts_cache import StagedModel, stage_tarball, sweep_stale
from smlocal.emulator.artifacts_limits import (
    DEFAULT_MAX_MODEL_BYTES,
    DEFAULT_MAX_MODEL_MEMBERS,
    DEFAULT_MAX_MODEL_RATIO,
    StagingCancelledError,
    StagingLimits,
)
from smlocal.emulator.artifacts_s3 import S3ClientLike, stage_s3
from smlocal.emulator.artifacts_tar import ACCEPTED
from smlocal.emulator.artifacts_tree import tree_digest
from smlocal.emulator.errors import ArtifactError

__all__ = [
    "DEFAULT_MAX_MODEL_BYTES",
    "DEFAULT_MAX_MODEL_MEMBERS",
    "DEFAULT_MAX_MODEL_RATIO",
    "S3ClientLike",
    "StagedModel",
    "StagingCancelledError",
    "StagingLimits",
    "stage_model",
    "stage_model_async",
    "stage_models",
    "sweep_stale",
]

log = logging.getLogger(__name__)


def stage_model(
    source: str | Path,
    cache_dir: Path,
    *,
    s3_client: S3ClientLike | None = None,
    limits: StagingLimits | None = None,
    cancel: threading.Event | None = None,
) -> StagedModel:
    """Make ``source`` available as a directory to mount read-only at /opt/ml/model.

    ``source`` is a local ``model.tar.gz``/``.tar``, a local directory, or an ``s3://`` URI
    (see the module docstring). Extracted and downloaded artifacts live below ``cache_dir``.
    ``s3_client`` is used for S3 sources; without one a boto3 S3 client is created (from a new
    ``boto3.session.Session``) when first needed, so boto3's usual configuration (credentials,
    ``AWS_ENDPOINT_URL_S3``) applies. ``limits`` defaults to :meth:`StagingLimits.from_env`
    (30 GiB, or ``SMLOCAL_MAX_MODEL_BYTES``). Setting ``cancel`` (from another thread) stops
    staging promptly with :class:`StagingCancelledError`, leaving nothing partial behind.

    Raises :class:`ArtifactError` for anything that cannot be staged.
    """
    label = str(source)
    bounds = limits if limits is not None else StagingLimits.from_env()
    if isinstance(source, str) and "://" in source:
        scheme = source.split("://", 1)[0]
        if scheme.lower() != "s3":
            raise ArtifactError(
                f"model source {label!r}: the {scheme!r} scheme is not supported; "
                f"expected {ACCEPTED}"
            )
        return stage_s3(label, source, cache_dir, s3_client, limits=bounds, cancel=cancel)
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
        return stage_tarball(label, path, cache_dir, limits=bounds, cancel=cancel)
    raise ArtifactError(
        f"model source {label!r} is neither a regular file nor a directory; expected {ACCEPTED}"
    )


async def stage_model_async(
    source: str | Path,
    cache_dir: Path,
    *,
    s3_client: S3ClientLike | None = None,
    limits: StagingLimits | None = None,
) -> StagedModel:
    """:func:`stage_model` in a worker thread, cancellable.

    Cancelling the awaiting task (Ctrl-C under ``asyncio.run`` does) sets the worker's cancel
    event and waits for the worker to stop and remove its temporary directory before the
    ``CancelledError`` propagates, so no thread keeps extracting after the caller has gone.
    """
    cancel = threading.Event()
    worker = asyncio.ensure_future(
        asyncio.to_thread(
            stage_model, source, cache_dir, s3_client=s3_client, limits=limits, cancel=cancel
        )
    )
    try:
        return await asyncio.shield(worker)
    except asyncio.CancelledError:
        cancel.set()
        with contextlib.suppress(Exception):
            await worker  # returns within one archive chunk; its finally removes the temp dir
        raise


def _stage_directory(label: str, path: Path) -> StagedModel:
    root = path.resolve()
    digest = tree_digest(label, root)
    log.info("using model directory %s as is (%s)", root, digest)
    return StagedModel(source=label, path=root, digest=digest)


async def stage_models(
    sources: Mapping[str, str | Path | None], cache_dir: Path
) -> dict[str, StagedModel | None]:
    """Each variant's model (``sources``: variant name → model, or None for none) staged one
    after another, cancellably (:func:`stage_model_async`): a cancelled endpoint start stops
    staging at once and leaves no partial directory."""
    staged: dict[str, StagedModel | None] = {}
    for name, source in sources.items():
        staged[name] = await stage_model_async(source, cache_dir) if source else None
    return staged
