"""Refuse what only a web page would send: the service's DNS-rebinding and cross-site guard.

The service checks no credentials: it trusts whoever reaches it, which on 127.0.0.1 means
programs of this machine. A browser on this machine reaches it too. A page on
``evil.example`` whose name re-resolves to 127.0.0.1 (DNS rebinding) sends requests with its
own name as Host and reads the answers; a cross-site form or ``fetch`` posts to
``/endpoints/...`` with the page's Origin. So when a request arrives on a loopback address,
its Host must name a loopback host (``127.0.0.1``, ``localhost``, ``[::1]``, any port) and an
Origin, if sent, must be a loopback one. boto3, the AWS CLI, the SageMaker SDK and curl send
neither a foreign Host nor an Origin. A service bound elsewhere (``--host``) is shared on
purpose, and the guard stays out of the way.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["refusal", "refuse"]

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# Cached: parsing the address was a third of the fast path's Python work per request
# (issue 15), and a client sends the same few Host values over and over.
@functools.lru_cache(maxsize=1024)
def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(authority: str) -> str:
    """``host`` of ``host:port``, ``[v6]:port`` or a bare host."""
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def refusal(scope: Scope) -> str | None:
    """Why this request is refused, or None. Only requests that came in on loopback."""
    server = scope.get("server")
    if not server:
        return None
    host = origin = None
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value
        elif key == b"origin":
            origin = value
    return _verdict(str(server[0]), host, origin)


# Cached: a client sends the same Host (and no Origin) on every request (issue 15).
@functools.lru_cache(maxsize=1024)
def _verdict(server_host: str, raw_host: bytes | None, raw_origin: bytes | None) -> str | None:
    if not _is_loopback(server_host):
        return None
    host = None if raw_host is None else raw_host.decode("latin-1")
    origin = None if raw_origin is None else raw_origin.decode("latin-1")
    if host is not None and not _is_loopback(_host_of(host)):
        return (
            f"Host {host!r} is not this machine: the local service answers only requests "
            "addressed to 127.0.0.1, localhost or [::1] (a guard against DNS rebinding)"
        )
    if origin is not None and origin != "null":
        if not _is_loopback(urlsplit(origin).hostname or ""):
            return f"requests from web pages ({origin}) are refused by the local service"
    elif origin == "null":
        return "requests from web pages (Origin null) are refused by the local service"
    return None


async def refuse(send: Send, reason: str) -> None:
    """403 in AWS's JSON error shape (boto3 reads it as AccessDeniedException)."""
    body = json.dumps(
        {"__type": "AccessDeniedException", "message": reason, "Message": reason}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-amzn-errortype", b"AccessDeniedException"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
