"""Collect :class:`~contracts.checks.image.ImageFacts` from the local Docker engine.

The PATH lookup for ``serve`` reads the image's file system through a created (never started)
container, so it works for images without a shell and runs none of the image's code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import posixpath
from typing import Any

import docker
import docker.errors

from smlocal.contracts.checks.image import ImageFacts
from smlocal.emulator.backend import LABEL_SESSION
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.instance_types import InstanceType

__all__ = ["collect_image_facts"]

_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27


def collect_image_facts(backend: DockerBackend, image: str, instance: InstanceType) -> ImageFacts:
    """Inspect ``image``; look for ``serve`` on its PATH only when it has no ENTRYPOINT."""
    attrs = backend.image_info(image)
    facts = ImageFacts(image=image, attrs=attrs, serve_path=None, instance=instance)
    if facts.entrypoint:
        return facts
    path = facts.env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return dataclasses.replace(facts, serve_path=_find_serve(image, path))


def _find_serve(image: str, search_path: str) -> str | None:
    client = docker.from_env()
    container: Any = client.containers.create(
        image, command=["serve"], labels={LABEL_SESSION: "contract-probe"}
    )
    try:
        for directory in filter(None, search_path.split(":")):
            candidate = posixpath.join(directory, "serve")
            try:
                stream, stat = container.get_archive(candidate)
            except docker.errors.NotFound:
                continue
            for _ in stream:  # drain: the engine streams a tar of the file
                pass
            mode = int(stat.get("mode", 0))
            if mode & _GO_MODE_SYMLINK or (not mode & _GO_MODE_DIR and mode & 0o111):
                return candidate
        return None
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
