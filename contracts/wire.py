"""Plain HTTP/1.1 calls to the model container itself, timed, never raising.

Checks talk to the container directly (its own socket, see ``context.live_address``), not
through the emulator's runtime API: the contract is about what the container answers, and the
runtime API would translate a container's 5xx into ModelError. Each call opens its own
connection, so the time to accept the socket is measured every time and one slow request
cannot hold a shared one.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Reply", "call", "connect_time"]

Address = tuple[str, int]


@dataclass(frozen=True)
class Reply:
    status: int | None
    """None when no HTTP answer came (connection refused or reset, timeout)."""
    elapsed_s: float
    connect_s: float | None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def server_error(self) -> bool:
        """A 5xx or no answer at all: what the contract never allows for a client's input."""
        return self.status is None or self.status >= 500

    @property
    def content_type(self) -> str:
        value = next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")
        return value.split(";", 1)[0].strip().lower()

    def describe(self) -> str:
        if self.status is None:
            return f"no answer after {self.elapsed_s:.2f} s ({self.error})"
        snippet = self.body[:160].decode(errors="replace").replace("\n", "\\n")
        more = "…" if len(self.body) > 160 else ""
        return f"{self.status} in {self.elapsed_s * 1000:.0f} ms: {snippet}{more}"


def call(
    address: Address,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> Reply:
    """One request on a fresh connection; every failure becomes a Reply with status None."""
    started = time.perf_counter()
    connect_s: float | None = None
    connection = http.client.HTTPConnection(*address, timeout=timeout_s)
    try:
        connection.connect()
        connect_s = time.perf_counter() - started
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        data = response.read()
        return Reply(
            status=response.status,
            elapsed_s=time.perf_counter() - started,
            connect_s=connect_s,
            body=data,
            headers=dict(response.getheaders()),
        )
    except (OSError, http.client.HTTPException) as error:
        reason = str(error) or error.__class__.__name__
        if isinstance(error, TimeoutError | socket.timeout):
            reason = f"no answer within {timeout_s:g} s"
        return Reply(None, time.perf_counter() - started, connect_s, error=reason)
    finally:
        connection.close()


def connect_time(address: Address, timeout_s: float = 5.0) -> float | None:
    """Seconds until the container accepted a TCP connection; None if it did not."""
    started = time.perf_counter()
    try:
        with socket.create_connection(address, timeout=timeout_s):
            return time.perf_counter() - started
    except OSError:
        return None
