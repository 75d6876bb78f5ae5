"""Live-check verdicts over real HTTP against the fixture server run in-process (no Docker).

The same stdlib server the fixture images run, started on a loopback port in a thread, so the
request-level checks (examples, content types, Accept, headers, concurrency) are proven fast;
tests/integration repeats them through Docker with the full suite.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from smlocal.contracts.checks import invocations, ping
from smlocal.contracts.context import Answer, LiveContext, learn, live_address
from smlocal.contracts.model import Status
from smlocal.contracts.specfile import ContractSpec
from smlocal.emulator.backend import RunningContainer
from smlocal.emulator.instance_types import lookup_instance_type

SERVER = (
    Path(__file__).resolve().parents[1] / "fixtures" / "images" / "common" / "fixture_server.py"
)
SPEC = {
    "content_types": ["application/json", "text/csv"],
    "examples": [
        {
            "name": "echo-json",
            "content_type": "application/json",
            "json": {"x": 1.0},
            "expect": {
                "status": 200,
                "json": {"x": 1.0000000001},
                "content_type": "application/json",
            },
        },
        {
            "name": "schema",
            "content_type": "application/json",
            "json": {"x": 1},
            "expect": {"json_schema": {"type": "object", "required": ["x"]}},
        },
    ],
}


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fixture_server", SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fixture_server", module)
    spec.loader.exec_module(module)
    return module


FIXTURE = _module()


@pytest.fixture()
def serve_mode(request: pytest.FixtureRequest) -> Iterator[LiveContext]:
    server_class = FIXTURE.SERVER_CLASSES.get(request.param, FIXTURE.FixtureServer)
    server: Any = server_class(0, request.param)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        context = LiveContext(
            address=("127.0.0.1", server.server_address[1]),
            container_id="in-process",
            backend=None,  # type: ignore[arg-type]  # these checks never ask the engine
            instance=lookup_instance_type("ml.m5.large"),
            spec=ContractSpec.model_validate(SPEC),
        )
        learn(context)
        yield context
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("serve_mode", ["echo"], indirect=True)
def test_a_good_server_passes_the_request_checks(serve_mode: LiveContext) -> None:
    assert [w.name for w in serve_mode.working][:2] == ["echo-json", "schema"]
    for check in (
        invocations.check_examples,
        invocations.check_content_types,
        invocations.check_unsupported_type,
        invocations.check_accept,
        invocations.check_unknown_headers,
        invocations.check_concurrency,
        invocations.check_response_limits,
    ):
        outcome = check(serve_mode)
        assert outcome.status == Status.PASSED, (check.__name__, outcome)


@pytest.mark.parametrize(
    ("serve_mode", "check", "evidence"),
    [
        ("wrong-answer", invocations.check_examples, "echo-json: expected JSON"),
        ("wrong-answer", invocations.check_examples, "schema: JSON Schema: (root): 'x' is a"),
        ("rejects-csv", invocations.check_content_types, "text/csv (probe body): 415"),
        ("500-on-unknown-type", invocations.check_unsupported_type, "500 in"),
        ("500-without-accept", invocations.check_accept, "Accept missing"),
        ("rejects-unknown-headers", invocations.check_unknown_headers, "unknown headers"),
        ("limits-concurrency", invocations.check_concurrency, "503 in"),
        ("huge-csv-response", invocations.check_response_limits, "answer of 7340032 bytes"),
    ],
    indirect=["serve_mode"],
)
def test_each_broken_mode_fails_its_check(
    serve_mode: LiveContext, check: Any, evidence: str
) -> None:
    outcome = check(serve_mode)
    assert outcome.status == Status.FAILED
    assert any(evidence in line for line in outcome.evidence), outcome.evidence


@pytest.mark.parametrize("serve_mode", ["echo"], indirect=True)
def test_without_a_spec_probing_decides(serve_mode: LiveContext) -> None:
    serve_mode.spec = None
    serve_mode.working.clear()
    serve_mode.probes.clear()
    learn(serve_mode)
    assert serve_mode.accepted_types() == ("application/json", "text/csv")
    assert invocations.check_examples(serve_mode).status == Status.NOT_APPLICABLE
    assert invocations.check_content_types(serve_mode).status == Status.PASSED


@pytest.mark.parametrize("serve_mode", ["echo"], indirect=True)
def test_a_server_that_accepts_at_once_passes_accept_latency(serve_mode: LiveContext) -> None:
    outcome = ping.check_accept(serve_mode)
    assert outcome.status == Status.PASSED, outcome
    assert outcome.measurements["connects"] == ping.ACCEPTS


@pytest.mark.parametrize("serve_mode", ["echo"], indirect=True)
def test_accept_latency_through_a_port_proxy_is_no_verdict(serve_mode: LiveContext) -> None:
    serve_mode.through_proxy = True  # as on Docker Desktop: the proxy accepts for the container
    outcome = ping.check_accept(serve_mode)
    assert outcome.status == Status.NOT_APPLICABLE
    assert "its accept time cannot be measured" in outcome.summary


@pytest.mark.parametrize("serve_mode", ["slow-accept"], indirect=True)
def test_an_overflowing_accept_queue_fails_accept_latency(serve_mode: LiveContext) -> None:
    outcome = ping.check_accept(serve_mode)
    assert outcome.status == Status.FAILED
    assert outcome.measurements["max_ms"] >= 900  # the kernel's SYN retry, not a slow answer
    assert ping.SYN_RETRY_HINT in outcome.evidence


@pytest.mark.parametrize("serve_mode", ["echo"], indirect=True)
def test_live_checks_use_the_containers_own_socket_when_routable(
    serve_mode: LiveContext,
) -> None:
    own = serve_mode.address
    container = RunningContainer("id", "name", published=("127.0.0.1", 1), direct=own)
    assert live_address(container) == (own, False)


def test_live_checks_fall_back_to_the_published_port_without_a_route() -> None:
    # Nothing listens on port 1: as the bridge address on Docker Desktop, the route is gone.
    published = ("127.0.0.1", 8080)
    container = RunningContainer("id", "name", published=published, direct=("127.0.0.1", 1))
    assert live_address(container) == (published, True)
    no_bridge = RunningContainer("id", "name", published=published, direct=None)
    assert live_address(no_bridge) == (published, True)


def test_an_answer_at_the_60_s_timeout_breaks_the_response_limits() -> None:
    # Waiting out SageMaker's 60 s for real belongs nowhere near a unit test: the verdict only.
    context = LiveContext(
        address=("127.0.0.1", 1),
        container_id="none",
        backend=None,  # type: ignore[arg-type]
        instance=lookup_instance_type("ml.m5.large"),
        spec=None,
    )
    assert invocations.check_response_limits(context).status == Status.NOT_APPLICABLE
    context.answers.append(Answer("text/csv body of 4 bytes", 200, 4, 0.01))
    context.answers.append(
        Answer("text/csv body of 4 bytes", None, 0, 60.0, "no answer within 60 s")
    )
    outcome = invocations.check_response_limits(context)
    assert outcome.status == Status.FAILED
    assert outcome.evidence == (
        "text/csv body of 4 bytes: no answer within 60 s after 60.0 s (limit 60 s)",
    )
