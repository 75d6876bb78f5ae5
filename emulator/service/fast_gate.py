"""Which InvokeEndpoint requests on the service's port may take the protocol-level fast path.

The service answers some InvokeEndpoint requests before the runtime API sees them: the
origin guard refuses what a web page sent (:mod:`~smlocal.emulator.service.origin_guard`),
and an async endpoint refuses InvokeEndpoint (:mod:`~smlocal.emulator.service.async_routes`).
Those requests take the ASGI path, where that code answers them as it always has; every other
one is answered by :meth:`RuntimeApi.answer_invoke` (or ``answer_stream``) through
:mod:`~smlocal.emulator.fast_path`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smlocal.emulator.runtime_api import BodyReader, InvokeAnswer, RuntimeApi, StreamSink
from smlocal.emulator.service.origin_guard import refusal

if TYPE_CHECKING:
    from smlocal.emulator.service.async_inference import AsyncInference

__all__ = ["ServiceFastPath"]


class ServiceFastPath:
    def __init__(self, runtime: RuntimeApi, asynchronous: AsyncInference) -> None:
        self.runtime = runtime
        self.asynchronous = asynchronous

    def takes(self, server: Any, headers: list[tuple[bytes, bytes]], name: str) -> bool:
        if refusal({"server": server, "headers": headers}) is not None:
            return False
        endpoint = self.asynchronous.endpoints.get(name)
        return endpoint is None or self.asynchronous.config_of(endpoint) is None

    async def answer_invoke(
        self, name: str, headers: Mapping[str, str], read: BodyReader
    ) -> InvokeAnswer | None:
        return await self.runtime.answer_invoke(name, headers, read)

    async def answer_stream(
        self, name: str, headers: Mapping[str, str], read: BodyReader, sink: StreamSink
    ) -> InvokeAnswer | None:
        return await self.runtime.answer_stream(name, headers, read, sink)
