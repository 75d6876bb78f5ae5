#!/usr/bin/env python3
"""Copy a local image under a new tag with only its platform metadata changed (stdlib only).

Used to build fixture images for other platforms without an emulator or a registry: the
layers stay this machine's (so the copy still runs here, with Docker's platform warning),
while ``docker image inspect`` reports the platform given — which is all that SageMaker's
platform rule, and smlocal's ``image.platform`` check, look at.

usage: relabel-image-platform.py SOURCE TARGET OS/ARCH[/VARIANT]

Safe to run twice: when TARGET already carries the label naming SOURCE's current image id,
nothing is done.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import IO

SOURCE_LABEL = "dev.smlocal.fixture.relabelled-from"


def _docker(*args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise SystemExit(f"relabel: docker {args[0]} failed: {message}")
    return done.stdout.decode(errors="replace").strip()


def _image_id(image: str) -> str | None:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        check=False,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _untagged(image_id: str) -> bool:
    return _docker("image", "inspect", "--format", "{{len .RepoTags}}", image_id) == "0"


def _up_to_date(target: str, source_id: str) -> bool:
    if _image_id(target) is None:
        return False
    fmt = '{{index .Config.Labels "' + SOURCE_LABEL + '"}}'
    return _docker("image", "inspect", "--format", fmt, target) == source_id


def relabel(source: str, target: str, platform: str) -> None:
    os_name, _, rest = platform.partition("/")
    arch, _, variant = rest.partition("/")
    if not os_name or not arch:
        raise SystemExit(f"relabel: platform must be OS/ARCH[/VARIANT], got {platform!r}")
    source_id = _image_id(source)
    if source_id is None:
        raise SystemExit(f"relabel: no local image {source}; build it first")
    if _up_to_date(target, source_id):
        return
    stale = _image_id(target)
    with tempfile.TemporaryDirectory(prefix="smlocal-relabel-") as scratch:
        saved_path = Path(scratch) / "saved.tar"
        loaded_path = Path(scratch) / "relabelled.tar"
        _docker("image", "save", "--output", str(saved_path), source)
        # Copied member by member, never extracted: only the config and manifest change.
        with tarfile.open(saved_path) as saved, tarfile.open(loaded_path, "w") as out:
            manifest = json.load(_member(saved, "manifest.json"))
            config = json.load(_member(saved, manifest[0]["Config"]))
            config["os"], config["architecture"] = os_name, arch
            config.pop("variant", None)
            if variant:
                config["variant"] = variant
            labels = config.setdefault("config", {}).get("Labels") or {}
            config["config"]["Labels"] = {**labels, SOURCE_LABEL: source_id}
            config_bytes = json.dumps(config).encode()
            # docker load names an image by its config's digest: the file name must match.
            # Docker 25+ also writes an OCI layout (index.json), which the containerd image store
            # loads in preference to manifest.json: leave it out so our manifest is the one.
            replaced = {
                "manifest.json",
                manifest[0]["Config"],
                "repositories",
                "index.json",
                "oci-layout",
            }
            manifest[0]["Config"] = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
            manifest[0]["RepoTags"] = [target]
            for member in saved.getmembers():
                if member.name not in replaced:
                    out.addfile(member, saved.extractfile(member) if member.isfile() else None)
            _add(out, manifest[0]["Config"], config_bytes)
            _add(out, "manifest.json", json.dumps(manifest).encode())
        _docker("image", "load", "--input", str(loaded_path))
    got = _docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", target)
    if got != f"{os_name}/{arch}":
        raise SystemExit(f"relabel: {target} loaded as {got}, not {os_name}/{arch}")
    if stale is not None and stale != _image_id(target) and _untagged(stale):
        # The older copy lost its tag to the load; remove it unless a container still uses it.
        subprocess.run(["docker", "image", "rm", stale], capture_output=True, check=False)


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    extracted = archive.extractfile(name)
    if extracted is None:
        raise SystemExit(f"relabel: {name} missing from the saved image")
    return extracted


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    relabel(argv[1], argv[2], argv[3])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
