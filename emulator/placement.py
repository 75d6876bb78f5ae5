"""What the host cannot give an endpoint that its instance type would have on SageMaker.

An ``ml.g5.xlarge`` on a host without GPUs, an ``ml.c7g.large`` (Graviton, arm64) with an
amd64 image, or a type with more vCPUs or memory than the host: the endpoint still runs, with
less than the real instance, and the user should hear it at once rather than find out from a
benchmark. ``smlocal serve`` prints these; the service logs them at CreateEndpoint.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

from smlocal.emulator.spec import EndpointSpec

__all__ = ["host_has_gpus", "placement_warnings"]


def host_has_gpus() -> bool:
    """Whether an NVIDIA GPU is visible here (its device node, or the driver's tool)."""
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


def _host_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def placement_warnings(
    spec: EndpointSpec,
    image_info: Callable[[str], dict[str, Any]],
    *,
    host_cpus: int | None = None,
    host_memory_bytes: int | None = None,
    gpus_here: bool | None = None,
) -> list[str]:
    """One sentence per shortfall, for each variant (``image_info``: the image's inspect
    data, e.g. ``DockerBackend.image_info``; images it cannot inspect are not judged)."""
    host_cpus = host_cpus if host_cpus is not None else os.cpu_count()
    host_memory = host_memory_bytes if host_memory_bytes is not None else _host_memory_bytes()
    gpus_here = host_has_gpus() if gpus_here is None else gpus_here
    warnings: list[str] = []
    for variant in spec.variants:
        if variant.serverless is not None:
            continue
        kind = variant.instance
        where = f"variant {variant.name} ({kind.name})"
        if kind.gpus and not gpus_here:
            warnings.append(
                f"{where}: {kind.describe()}, but this host has no GPU: the container runs "
                "on CPU only"
            )
        elif kind.accelerators:
            warnings.append(
                f"{where}: {kind.describe()}; smlocal cannot give a container "
                f"{kind.accelerator or 'these accelerators'}: it runs on CPU only"
            )
        try:
            arch = str(image_info(variant.image).get("Architecture") or "")
        except Exception:  # not in the engine (an ECR URI to resolve): nothing to judge
            arch = ""
        if arch and arch != kind.arch:
            graviton = " (Graviton)" if kind.arch == "arm64" else ""
            warnings.append(
                f"{where} is {kind.arch}{graviton}, but the image {variant.image} is {arch}: "
                "SageMaker would not run it there (it runs here only because this host is not)"
            )
        if host_cpus and kind.vcpus > host_cpus:
            warnings.append(
                f"{where} has {kind.vcpus} vCPUs; this host has {host_cpus}: the container "
                f"gets {host_cpus}"
            )
        if host_memory and kind.memory_bytes > host_memory:
            warnings.append(
                f"{where} has {kind.memory_gib:g} GiB of memory; this host has "
                f"{host_memory / 1024**3:.0f} GiB: the container's limit cannot be reached here"
            )
    return warnings
