"""ping.accept-latency tells a small listen backlog (a warning naming it) from a slow accept
loop (a failure); and contract-test's cleanup keeps what is not a dead run's (no Docker)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from smlocal.contracts.checks import ping
from smlocal.contracts.cleanup import (
    LABEL_HOST,
    LABEL_PID,
    LABEL_RUN,
    LABEL_STARTED,
    RunIdentity,
    is_stale,
    parse_ss_backlog,
)
from smlocal.contracts.context import LiveContext
from smlocal.contracts.model import Severity, Status
from smlocal.contracts.specfile import ContractSpec
from smlocal.emulator.instance_types import lookup_instance_type


class _Ping(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def stdlib_server() -> Iterator[ThreadingHTTPServer]:
    """A correct stdlib server with ThreadingHTTPServer's default listen backlog (5)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ping)
    server.daemon_threads = True
    assert server.request_queue_size == 5
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _context(server: ThreadingHTTPServer, spec: ContractSpec | None) -> LiveContext:
    return LiveContext(
        address=("127.0.0.1", server.server_address[1]),
        container_id="in-process",
        backend=None,  # type: ignore[arg-type]  # the check never asks the engine
        instance=lookup_instance_type("ml.m5.large"),
        spec=spec,
        listen_backlog=lambda: server.request_queue_size,
    )


def test_a_default_stdlib_backlog_overflowed_by_a_burst_is_a_warning_naming_it(
    stdlib_server: ThreadingHTTPServer,
) -> None:
    outcome = ping.check_accept(_context(stdlib_server, None))
    assert outcome.status == Status.FAILED and outcome.severity == Severity.WARNING, outcome
    assert "listen backlog 5" in outcome.summary
    assert outcome.measurements["max_ms"] < 250  # paced connects: the accept loop keeps up
    assert outcome.measurements["burst_slow"] > 0
    assert ping.BACKLOG_HINT in outcome.evidence and "request_queue_size" in ping.BACKLOG_HINT


def test_a_declared_concurrency_that_overflows_the_backlog_fails(
    stdlib_server: ThreadingHTTPServer,
) -> None:
    spec = ContractSpec.model_validate({"concurrency": 32})
    outcome = ping.check_accept(_context(stdlib_server, spec))
    assert outcome.status == Status.FAILED and outcome.severity is None, outcome
    assert "declared concurrency" in outcome.summary and "listen backlog 5" in outcome.summary


def test_a_declared_concurrency_the_backlog_holds_keeps_it_a_warning(
    stdlib_server: ThreadingHTTPServer,
) -> None:
    spec = ContractSpec.model_validate({"concurrency": 4})
    outcome = ping.check_accept(_context(stdlib_server, spec))
    assert outcome.severity == Severity.WARNING, outcome
    assert "beyond the declared concurrency 4" in outcome.summary


def test_ss_output_gives_the_backlog_of_the_port() -> None:
    output = (
        "LISTEN 0      5            0.0.0.0:8080      0.0.0.0:*\n"
        "LISTEN 0      4096       127.0.0.11:39195    0.0.0.0:*\n"
    )
    assert parse_ss_backlog(output, 8080) == 5
    assert parse_ss_backlog(output, 39195) == 4096
    assert parse_ss_backlog(output, 9090) is None
    assert parse_ss_backlog("0 128 [::]:8080 [::]:*\n", 8080) == 128  # old ss: no State


ME = RunIdentity("thisrun00001", 4242, "builder", "777")


def _labels(**overrides: str) -> dict[str, str]:
    labels = {LABEL_RUN: "earlier00001", LABEL_PID: "999", LABEL_HOST: "builder"}
    labels.update(overrides)
    return labels


@pytest.mark.parametrize(
    ("labels", "alive", "started", "stale"),
    [
        (_labels(), False, None, True),  # its process is gone
        (_labels(), True, None, False),  # a live run: never touched
        (_labels(**{LABEL_STARTED: "5"}), True, "5", False),  # the same live process
        (_labels(**{LABEL_STARTED: "5"}), True, "9", True),  # the PID was reused
        (_labels(**{LABEL_STARTED: "5"}), True, None, False),  # cannot tell: keep
        (_labels(**{LABEL_RUN: "thisrun00001"}), False, None, False),  # this run
        (_labels(**{LABEL_HOST: "elsewhere"}), False, None, False),  # another host's
        (_labels(**{LABEL_PID: "x"}), False, None, False),  # unreadable PID
        ({"smlocal.session": "service-abc"}, False, None, False),  # the service's
    ],
)
def test_only_containers_of_dead_runs_on_this_host_are_stale(
    labels: dict[str, str], alive: bool, started: str | None, stale: bool
) -> None:
    verdict = is_stale(labels, ME, alive=lambda pid: alive, started_of=lambda pid: started)
    assert verdict is stale
