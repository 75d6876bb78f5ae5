"""A container's log stream from Docker, read a buffer at a time instead of a frame at a time.

docker-py's ``logs(stream=True, follow=True)`` reads each frame (an 8-byte header, then its
payload) with two urllib3 reads, ~15 µs a frame in the serving process; a reference image
writes a frame per request. :func:`follow_output` asks for the same stream but takes what
Docker has sent with one ``read1`` of the HTTP body (http.client undoes the chunked encoding)
and splits the frames itself, handing on the payloads of all whole frames at once. Paced
(:func:`~smlocal.emulator.log_files.paced`), a trickle of lines then costs a wake-up per
pause and a few µs a line. A container with a TTY has no frames: docker-py's stream serves it.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from typing import Any

from smlocal.emulator.errors import BackendError

__all__ = ["follow_output"]

_HEADER = struct.Struct(">xxxxL")  # stream type, 3 zero bytes, payload length
_READ = 1 << 16


def follow_output(container: Any, since: float | None = None) -> Iterator[bytes]:
    """Output of the docker-py ``container`` (stdout and stderr, in Docker's order) from
    ``since`` (or its start) until it is gone; each item is whole frames' payloads."""
    if container.attrs.get("Config", {}).get("Tty"):
        return _docker_py(container, since)
    api = container.client.api
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "follow": 1, "tail": "all"}
    if since:
        params["since"] = float(since)
    url = f"{api.base_url}/v{api.api_version}/containers/{container.id}/logs"
    response = api.get(url, params=params, stream=True)
    if response.status_code != 200:
        response.close()
        raise BackendError(f"no log stream for {container.id[:12]}: HTTP {response.status_code}")
    body = getattr(response.raw, "_fp", None)  # the http.client response under urllib3's
    if not hasattr(body, "read1"):  # another urllib3 than we know: docker-py's own reads
        response.close()
        return _docker_py(container, since)
    return _payloads(response, body)


def _docker_py(container: Any, since: float | None) -> Iterator[bytes]:
    extra: dict[str, Any] = {"since": float(since)} if since else {}
    stream: Iterator[bytes] = container.logs(stream=True, follow=True, **extra)
    return stream


def _payloads(response: Any, body: Any) -> Iterator[bytes]:
    pending = b""
    try:
        while True:
            data: bytes = body.read1(_READ)
            if not data:
                return
            pending = pending + data if pending else data
            payloads, pending = split_frames(pending)
            if payloads:
                yield payloads
    finally:
        with contextlib.suppress(Exception):
            response.close()


def split_frames(data: bytes) -> tuple[bytes, bytes]:
    """The payloads of the whole frames at the start of ``data``, joined, and the rest (a
    frame not yet complete)."""
    parts = []
    at, end = 0, len(data)
    while end - at >= _HEADER.size:
        (length,) = _HEADER.unpack_from(data, at)
        if end - at - _HEADER.size < length:
            break
        at += _HEADER.size
        parts.append(data[at : at + length])
        at += length
    return b"".join(parts), data[at:]
