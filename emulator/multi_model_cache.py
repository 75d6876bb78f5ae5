"""The two caches of a multi-model endpoint: model files on disk, and models loaded in a container.

:class:`ModelFiles` (one per variant) turns a ``TargetModel`` into files below the variant's
models directory, which every container of the variant sees read-only at ``/opt/ml/models``:
the artifact is staged with :func:`~smlocal.emulator.artifacts.stage_model_async` (boto3 for
``s3://``, the bounded, cancellable extraction and the digest-named cache of every other model
source), then hard-linked (copied where links cannot be made) to
``<models dir>/<model_name>/model``. It is fetched once, however many requests ask at once.

:class:`InstanceModels` (one per container) is the container's side of the MME API (reference
§D.1): ``POST /models`` loads (409: already loaded, fine), ``DELETE /models/{name}`` unloads,
and a 507 answer to a load unloads the least recently used idle model and tries again, until
the load succeeds or nothing is left to unload. Loads are single-flight per model, a model in
use by a request is never unloaded under it, and a load waits for an unload of the same model
still under way. Times go to an ``observe(metric, microseconds)`` callback with SageMaker's
metric names (ModelDownloadingTime, ModelLoadingTime, ModelUnloadingTime).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from smlocal.emulator.artifacts import stage_model_async
from smlocal.emulator.multi_model_config import (
    artifact_source,
    container_model_url,
    model_name_for,
)

__all__ = [
    "InstanceModels",
    "ModelFiles",
    "ModelLoadError",
    "ModelServer",
    "Observe",
    "install_tree",
]

log = logging.getLogger(__name__)

# (metric name, microseconds)
Observe = Callable[[str, int], None]


def _drop(tasks: dict[str, Any], name: str, _task: object) -> None:
    tasks.pop(name, None)


def _since_us(started: float) -> int:
    return int((time.perf_counter() - started) * 1e6)


class ModelLoadError(Exception):
    """The container would not load a model: ``status`` is its answer (None: no answer)."""

    def __init__(self, status: int | None, message: str, *, out_of_memory: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.out_of_memory = out_of_memory


class ModelServer(Protocol):
    """A container's MME management API: the statuses it answers (or ModelLoadError)."""

    async def load(self, name: str, url: str) -> tuple[int, str]: ...

    async def unload(self, name: str) -> tuple[int, str]: ...


class ModelFiles:
    """One variant's model files: ``TargetModel`` → ``<models_dir>/<model_name>/model``."""

    def __init__(
        self, prefix: str, models_dir: Path, cache_dir: Path, observe: Observe | None = None
    ) -> None:
        self.prefix = prefix
        self.models_dir = models_dir
        self.cache_dir = cache_dir
        self.observe = observe or (lambda _metric, _us: None)
        self._fetching: dict[str, asyncio.Task[str]] = {}

    def present(self, target_model: str) -> bool:
        return (self.models_dir / model_name_for(target_model) / "model").is_dir()

    async def fetch(self, target_model: str) -> str:
        """The container ``url`` of ``target_model``'s files, fetching them if need be.

        Raises :class:`~smlocal.emulator.errors.ArtifactError` when the artifact cannot be
        read or staged (missing, corrupt, over a limit, S3 refused)."""
        name = model_name_for(target_model)
        if self.present(target_model):
            return container_model_url(name)
        task = self._fetching.get(name)
        if task is None:
            task = asyncio.ensure_future(self._fetch(target_model, name))
            self._fetching[name] = task
            task.add_done_callback(functools.partial(_drop, self._fetching, name))
        return await asyncio.shield(task)

    async def _fetch(self, target_model: str, name: str) -> str:
        started = time.perf_counter()
        source = artifact_source(self.prefix, target_model)
        staged = await stage_model_async(source, self.cache_dir)
        await asyncio.to_thread(install_tree, staged.path, self.models_dir / name / "model")
        took = _since_us(started)
        self.observe("ModelDownloadingTime", took)
        log.info("model %s fetched from %s in %.0f ms", target_model, source, took / 1000)
        return container_model_url(name)

    def remove_all(self) -> None:
        """Remove the models directory (the digest-named staged copies stay in the cache)."""
        shutil.rmtree(self.models_dir, ignore_errors=True)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another filesystem, or links refused: a copy does the same job
        shutil.copy2(source, destination)


def install_tree(staged: Path, destination: Path) -> None:
    """``staged``'s tree at ``destination``, whole or not at all (a temp sibling, renamed)."""
    if destination.is_dir():
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.parent / f".tmp-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(staged, tmp, copy_function=_link_or_copy, symlinks=True)
        try:
            tmp.rename(destination)
        except OSError:
            if not destination.is_dir():  # someone else's rename won: theirs is the same tree
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class InstanceModels:
    """The models loaded in one container, least recently used first."""

    def __init__(self, server: ModelServer, observe: Observe | None = None) -> None:
        self.server = server
        self.observe = observe or (lambda _metric, _us: None)
        self._loaded: OrderedDict[str, None] = OrderedDict()
        self._loading: dict[str, asyncio.Task[None]] = {}
        self._unloading: dict[str, asyncio.Task[None]] = {}
        self._in_use: Counter[str] = Counter()

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    @property
    def loaded(self) -> list[str]:
        """Loaded model names, least recently used first."""
        return list(self._loaded)

    def load(self, name: str, fetch: Callable[[], Awaitable[str]]) -> asyncio.Future[None]:
        """A future done once ``name`` is loaded (at once if it is). One load per model however
        many ask; the load goes on when a waiter stops waiting (await it through
        ``asyncio.shield``, or with ``asyncio.wait``). ``fetch`` gives the container url."""
        if name in self._loaded:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        task = self._loading.get(name)
        if task is None:
            task = asyncio.ensure_future(self._load(name, fetch))
            self._loading[name] = task
            task.add_done_callback(functools.partial(_drop, self._loading, name))
            # A load nobody waits for any more must not log "exception never retrieved".
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _load(self, name: str, fetch: Callable[[], Awaitable[str]]) -> None:
        pending = self._unloading.get(name)
        if pending is not None:
            await asyncio.shield(pending)
        url = await fetch()
        started = time.perf_counter()
        while True:
            status, text = await self.server.load(name, url)
            if 200 <= status < 300 or status == 409:  # 409: "already loaded" (reference §D.1)
                break
            if status != 507:
                raise ModelLoadError(status, text)
            victim = self._victim(name)
            if victim is None:
                raise ModelLoadError(status, text, out_of_memory=True)
            log.info("loading %s answered 507: unloading %s (least recently used)", name, victim)
            await self.unload(victim)
        self._loaded[name] = None
        self._loaded.move_to_end(name)
        self.observe("ModelLoadingTime", _since_us(started))

    def _victim(self, loading: str) -> str | None:
        return next(
            (n for n in self._loaded if n != loading and self._in_use[n] == 0),
            None,
        )

    @contextlib.contextmanager
    def using(self, name: str) -> Iterator[None]:
        """Mark ``name`` in use (never unloaded meanwhile) and most recently used."""
        self._in_use[name] += 1
        if name in self._loaded:
            self._loaded.move_to_end(name)
        try:
            yield
        finally:
            self._in_use[name] -= 1
            if self._in_use[name] <= 0:
                del self._in_use[name]

    def idle(self, name: str) -> bool:
        return self._in_use[name] == 0 and name not in self._loading

    async def unload(self, name: str) -> None:
        """``DELETE /models/{name}``; it counts as unloaded whatever the container answers
        (a 404 means it was not loaded; anything else is logged)."""
        if name not in self._loaded:
            pending = self._unloading.get(name)
            if pending is not None:
                await asyncio.shield(pending)
            return
        del self._loaded[name]  # at once, so no other load picks it as its victim too
        task = asyncio.ensure_future(self._unload(name))
        self._unloading[name] = task
        task.add_done_callback(functools.partial(_drop, self._unloading, name))
        await asyncio.shield(task)

    async def _unload(self, name: str) -> None:
        started = time.perf_counter()
        try:
            status, text = await self.server.unload(name)
        except ModelLoadError as error:
            log.warning("unloading model %s failed: %s", name, error.message)
            return
        if not (200 <= status < 300 or status == 404):
            log.warning("unloading model %s: the container answered %d %s", name, status, text)
        self.observe("ModelUnloadingTime", _since_us(started))

    def forget(self, name: str) -> None:
        """The container no longer has ``name`` (it said 404): load it again next time."""
        self._loaded.pop(name, None)

    async def unload_all_idle(self) -> None:
        for name in [n for n in self._loaded if self.idle(n)]:
            await self.unload(name)
