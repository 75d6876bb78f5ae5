"""Stateful sessions: which instance holds each session an endpoint's containers opened.

How SageMaker does it (Developer Guide, *Stateful sessions*): a client sends InvokeEndpoint
with ``SessionId: NEW_SESSION``; the container that serves it opens a session and answers
``X-Amzn-SageMaker-New-Session-Id: <id>; Expires=<UTC time>``, which boto3 returns as
``NewSessionId``. Every later request with ``SessionId: <id>`` (InvokeEndpoint or
InvokeEndpointWithResponseStream) goes to that same instance; the container closes the session
by answering ``X-Amzn-SageMaker-Closed-Session-Id: <id>`` (``ClosedSessionId``). The session
header itself is forwarded to the container, which owns the session's state.

Both answer headers must match botocore's output patterns; one that does not is a contract
break the caller turns into a ModelError (:class:`SessionHeaderError`), as for the other
answer headers. A session this table does not hold (never opened, closed, expired, or on an
instance that has gone) is routed like any request, and the container answers for it: what
AWS answers there is UNCONFIRMED (README, "Conformance choices").
"""

from __future__ import annotations

import functools
import re
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import botocore.session

from smlocal.emulator.endpoint import Endpoint, Instance
from smlocal.emulator.serverless import ServerlessEndpoint

__all__ = [
    "NEW_SESSION",
    "NO_SESSION",
    "SESSION_HEADER",
    "SessionAnswer",
    "SessionHeaderError",
    "SessionTable",
    "route_session",
    "session_table",
]

NEW_SESSION = "NEW_SESSION"
SESSION_HEADER = "x-amzn-sagemaker-session-id"
_SHOWN = 64


class SessionHeaderError(Exception):
    """A container's session header a client could not read (the message says which)."""


@dataclass(frozen=True)
class SessionAnswer:
    """The session headers of one answer, as the client gets them (None: not sent)."""

    new_session_id: str | None = None
    closed_session_id: str | None = None

    def headers(self) -> dict[str, str]:
        members = _members()
        found = {members["NewSessionId"].header: self.new_session_id}
        found[members["ClosedSessionId"].header] = self.closed_session_id
        return {name: value for name, value in found.items() if value is not None}


@dataclass(frozen=True)
class _Member:
    header: str
    pattern: re.Pattern[str]
    max_length: int


@functools.cache
def _members() -> dict[str, _Member]:
    """InvokeEndpoint's session output members: the header each comes in, and its rule."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpoint").output_shape
    assert shape is not None  # the model always has it
    found = {}
    for member in ("NewSessionId", "ClosedSessionId"):
        member_shape = shape.members[member]
        found[member] = _Member(
            header=str(member_shape.serialization["name"]),
            pattern=re.compile(str(member_shape.metadata["pattern"])),
            max_length=int(member_shape.metadata["max"]),
        )
    return found


@dataclass
class _Held:
    container_id: str
    variant: str
    expires_at: float  # epoch seconds


NO_SESSION = SessionAnswer()  # an answer that opened and closed none


class SessionTable:
    """The open sessions of one endpoint: session id → the container that holds it."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def instance_for(
        self, session_id: str | None, instances: Iterable[Instance], variant: str | None = None
    ) -> Instance | None:
        """The healthy instance holding ``session_id`` (in ``variant``, if one is named);
        None when no instance holds it any more, so the request is routed as usual."""
        if not session_id or session_id == NEW_SESSION:
            return None
        held = self._held.get(session_id)
        if held is None:
            return None
        if held.expires_at <= time.time():
            del self._held[session_id]
            return None
        if variant is not None and held.variant != variant:
            return None
        for instance in instances:
            if instance.container.id == held.container_id and instance.healthy:
                return instance
        del self._held[session_id]  # its instance has gone, and the session with it
        return None

    def observe(self, instance: Instance, answer: Mapping[str, str]) -> SessionAnswer:
        """Record the sessions a container's answer opened or closed (SessionHeaderError
        when it sent one a client could not read)."""
        members = _members()
        new = answer.get(members["NewSessionId"].header)
        closed = answer.get(members["ClosedSessionId"].header)
        for member, value in (("NewSessionId", new), ("ClosedSessionId", closed)):
            rule = members[member]
            if value is not None and (
                len(value) > rule.max_length or not rule.pattern.match(value)
            ):
                raise SessionHeaderError(
                    f"its {rule.header} header {value[:_SHOWN]!r} is not a session id"
                    + ("; Expires=YYYY-MM-DDThh:mm:ssZ" if member == "NewSessionId" else "")
                    + " (botocore's InvokeEndpoint output pattern)"
                )
        if new is not None:
            session_id, _, expires = new.partition(";")
            stamp = expires.strip().removeprefix("Expires=")
            try:  # the pattern admits month 13 or hour 99; no clock does
                expires_at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            except ValueError:
                raise SessionHeaderError(
                    f"its {members['NewSessionId'].header} header's Expires "
                    f"{stamp[:_SHOWN]!r} is no UTC time (YYYY-MM-DDThh:mm:ssZ)"
                ) from None
            self._held[session_id] = _Held(
                instance.container.id, instance.variant, expires_at.timestamp()
            )
        if closed is not None:
            self._held.pop(closed, None)
        return SessionAnswer(new, closed)


_TABLES: weakref.WeakKeyDictionary[Endpoint, SessionTable] = weakref.WeakKeyDictionary()


def session_table(endpoint: Endpoint) -> SessionTable:
    """The endpoint's sessions (made on first use; gone with the endpoint)."""
    table = _TABLES.get(endpoint)
    if table is None:
        table = _TABLES[endpoint] = SessionTable()
    return table


def route_session(
    endpoint: Endpoint, headers: Mapping[str, str], variant: str | None
) -> Instance | None:
    """The instance that holds the request's session, if any holds it. A serverless
    endpoint's request has its container reserved already: sessions are not routed there."""
    session_id = headers.get(SESSION_HEADER)
    if session_id is None or isinstance(endpoint, ServerlessEndpoint):
        return None
    live = [i for group in endpoint.instances.values() for i in group]
    return session_table(endpoint).instance_for(session_id, live, variant)
