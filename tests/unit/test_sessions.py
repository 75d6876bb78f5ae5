"""Stateful sessions through boto3 and the fake backend: NEW_SESSION opens one on whichever
instance serves it, later requests with its id (InvokeEndpoint and the response stream) reach
that instance only, the container's close ends the affinity, and a session header a client
could not read is a ModelError (emulator/sessions.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smlocal.emulator.sessions import SessionTable
from tests.unit.fakes import FakeBackend, FakeImage
from tests.unit.one_endpoint import one_endpoint

SESSION = "x-amzn-sagemaker-session-id"
_IDS = itertools.count(1)


def stateful(
    method: str, path: str, headers: Mapping[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """A stateful model's container: opens a session on NEW_SESSION, closes it on b"close"."""
    if path == "/ping":
        return 200, {}, b""
    reply = {"content-type": "text/plain"}
    session = headers.get(SESSION)
    if session == "NEW_SESSION":
        reply["X-Amzn-SageMaker-New-Session-Id"] = f"s-{next(_IDS)}; Expires=2099-01-01T00:00:00Z"
    elif body == b"close" and session:
        reply["X-Amzn-SageMaker-Closed-Session-Id"] = session
    elif body == b"bad":
        reply["X-Amzn-SageMaker-New-Session-Id"] = "no id; never"
    return 200, reply, body


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[tuple[Any, Any, FakeBackend]]:
    backend = FakeBackend({"stateful:1": FakeImage(handler=stateful)})
    with one_endpoint(backend, tmp_path, "stateful:1", name="chat", instances=3) as (sm, rt):
        yield sm, rt, backend


def _served(backend: FakeBackend, session: str) -> dict[str, int]:
    """Requests carrying ``session`` per container."""
    counts = {
        cid: sum(1 for _, headers, _ in c.requests if headers.get(SESSION) == session)
        for cid, c in backend.containers.items()
    }
    return {cid: n for cid, n in counts.items() if n}


def test_a_session_stays_on_its_instance_until_the_container_closes_it(
    clients: tuple[Any, Any, FakeBackend],
) -> None:
    _, rt, backend = clients
    call: dict[str, Any] = {"EndpointName": "chat", "ContentType": "text/plain"}
    opened = rt.invoke_endpoint(**call, Body=b"open", SessionId="NEW_SESSION")
    session, _, expires = opened["NewSessionId"].partition(";")
    assert expires.strip() == "Expires=2099-01-01T00:00:00Z"
    (holder,) = _served(backend, "NEW_SESSION")

    for _ in range(9):
        rt.invoke_endpoint(**call, Body=b"next", SessionId=session)
    streamed = rt.invoke_endpoint_with_response_stream(**call, Body=b"stream", SessionId=session)
    assert b"".join(e["PayloadPart"]["Bytes"] for e in streamed["Body"]) == b"stream"
    assert _served(backend, session) == {holder: 10}  # every one on the session's instance

    closed = rt.invoke_endpoint(**call, Body=b"close", SessionId=session)
    assert closed["ClosedSessionId"] == session
    assert "NewSessionId" not in closed
    for _ in range(6):  # no affinity any more: round robin again
        rt.invoke_endpoint(**call, Body=b"after", SessionId=session)
    assert len(_served(backend, session)) == 3


def test_an_unreadable_session_header_is_a_model_error(
    clients: tuple[Any, Any, FakeBackend],
) -> None:
    _, rt, _ = clients
    with pytest.raises(ClientError) as caught:
        rt.invoke_endpoint(EndpointName="chat", Body=b"bad", ContentType="text/plain")
    error = caught.value.response["Error"]
    assert error["Code"] == "ModelError"
    assert (
        "X-Amzn-SageMaker-New-Session-Id header 'no id; never' is not a session id"
        in (error["Message"])
    )


def test_an_impossible_expiry_time_is_a_session_header_error() -> None:
    """botocore's pattern admits 2026-13-45T99:00:00Z; the client must get a ModelError for
    it, not an InternalFailure."""
    from smlocal.emulator.sessions import SessionHeaderError

    instance: Any = SimpleNamespace(container=SimpleNamespace(id="c"), variant="A")
    with pytest.raises(SessionHeaderError, match="is no UTC time"):
        SessionTable().observe(
            instance, {"X-Amzn-SageMaker-New-Session-Id": "abc; Expires=2026-13-45T99:00:00Z"}
        )


def test_expired_and_unknown_sessions_route_as_usual() -> None:
    table = SessionTable()
    assert table.instance_for("nobody", []) is None
    assert table.instance_for("NEW_SESSION", []) is None
    assert table.instance_for(None, []) is None
