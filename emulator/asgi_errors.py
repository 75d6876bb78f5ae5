"""The last line on the API port: an exception that escapes the app is AWS's InternalFailure.

Without it uvicorn answers a bug with a text/plain ``Internal Server Error`` that botocore
cannot model. :class:`AwsShaped` wraps the whole app (runtime API, control plane, async
routes): an exception raised before the answer started becomes ``InternalFailure`` (500) in
AWS's JSON shape, with its traceback in the service log; one raised mid-answer can only end
the connection, as uvicorn does. A client that left needs no answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from smlocal.emulator.aws_errors import AwsError

__all__ = ["AwsShaped"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class AwsShaped:
    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            request_id = str(uuid.uuid4())
            log.exception(
                "request %s (%s %s) failed inside smlocal",
                request_id,
                scope["method"],
                scope["path"],
            )
            if started:
                return  # uvicorn ends a connection whose answer the app did not finish
            error = AwsError(
                "InternalFailure", f"smlocal failed on request {request_id}; see its log."
            )
            headers = [(k.encode(), v.encode()) for k, v in error.headers(request_id).items()]
            body = error.body()
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
