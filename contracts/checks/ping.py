"""Health-check checks: /ping answers 200 within 2 s, repeatedly, idle and under load.

SageMaker pings every instance while it is in service and replaces one that fails; a server
whose only worker is busy with a long /invocations cannot answer /ping in time (the classic
single-worker failure), so the load case is checked on its own. The container must also accept
a socket connection within 250 ms.
"""

from __future__ import annotations

import statistics
import threading
import time

from smlocal.contracts.checks.base import LiveCheck
from smlocal.contracts.context import LiveContext
from smlocal.contracts.model import CheckInfo, Outcome, Severity
from smlocal.contracts.wire import Reply, connect_time

__all__ = ["PING_CHECKS"]

PING_LIMIT_S = 2.0
ACCEPT_LIMIT_S = 0.25
PINGS = 10
ACCEPTS = 20
BUSY_S = 1.5
BUSY_CLIENTS = 8
MAX_FAILURES_SHOWN = 2
# Linux drops a SYN when the listen queue is full and the client retries it after 1 s.
SYN_RETRY_S = 0.9
SYN_RETRY_HINT = (
    "a connect took about 1 s: the SYN was dropped and retried, as happens when the server's "
    "accept queue is full (accept() not called fast enough, or a tiny listen backlog)"
)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _bad_ping(reply: Reply) -> bool:
    return reply.status != 200 or reply.elapsed_s > PING_LIMIT_S


LATENCY = CheckInfo(
    "ping.latency",
    "/ping answers 200 within 2 s, repeatedly",
    Severity.ERROR,
    "GET /ping must answer 200 within 2 s on every health check, for as long as the instance "
    "is in service.",
)


def check_latency(context: LiveContext) -> Outcome:
    times: list[float] = []
    failures: list[str] = []
    for number in range(1, PINGS + 1):
        reply = context.ping(PING_LIMIT_S)
        times.append(reply.elapsed_s)
        if _bad_ping(reply):
            failures.append(f"ping {number} of {PINGS}: {reply.describe()}")
            if len(failures) >= MAX_FAILURES_SHOWN:  # each costs up to 2 s; enough proof
                break
        time.sleep(0.05)
    measured = {
        "pings": len(times),
        "p50_ms": _ms(statistics.median(times)),
        "max_ms": _ms(max(times)),
    }
    if failures:
        return Outcome.failed(f"{len(failures)} ping(s) failed the 2 s rule", failures, **measured)
    return Outcome.passed(
        f"{PINGS} pings, p50 {measured['p50_ms']} ms, max {measured['max_ms']} ms", **measured
    )


ACCEPT = CheckInfo(
    "ping.accept-latency",
    "socket accepted within 250 ms",
    Severity.ERROR,
    "The container must accept a socket connection within 250 ms.",
)


def check_accept(context: LiveContext) -> Outcome:
    if context.through_proxy:
        # docker-proxy accepts at once (or not) whatever the container does: no verdict.
        return Outcome.not_applicable(
            "the container's own address is not routable from this host (Docker Desktop?), and "
            "Docker's port proxy accepts connections on its behalf, so its accept time cannot "
            "be measured"
        )
    times: list[float] = []
    for _ in range(ACCEPTS):
        took = connect_time(context.address, timeout_s=2.0)
        if took is None:
            return Outcome.failed(
                "a connection was refused or not accepted within 2 s",
                [f"connecting to {context.address[0]}:{context.address[1]} failed"],
            )
        times.append(took)
    worst = max(times)
    measured = {
        "connects": len(times),
        "max_ms": _ms(worst),
        "p50_ms": _ms(statistics.median(times)),
    }
    if worst > ACCEPT_LIMIT_S:
        return Outcome.failed(
            f"slowest accept took {measured['max_ms']} ms (limit 250 ms)",
            [
                f"{sum(t > ACCEPT_LIMIT_S for t in times)} of {len(times)} connects over 250 ms",
                *([SYN_RETRY_HINT] if worst >= SYN_RETRY_S else []),
            ],
            **measured,
        )
    return Outcome.passed(f"max {measured['max_ms']} ms over {len(times)} connects", **measured)


WHILE_BUSY = CheckInfo(
    "ping.while-busy",
    "/ping within 2 s while /invocations is busy",
    Severity.ERROR,
    "Health checks continue during traffic; /ping must still answer 200 within 2 s while every "
    "worker is busy with invocations, or SageMaker replaces a working instance.",
    needs=("ping.latency",),
)


def check_while_busy(context: LiveContext) -> Outcome:
    if not context.working:
        return Outcome.not_applicable(
            "no request is known to succeed (no spec example, and no JSON/CSV probe got a "
            "2xx), so the container cannot be kept busy; add an example to the spec"
        )
    stop = threading.Event()
    statuses: list[int | None] = []

    def keep_busy(index: int) -> None:
        request = context.working[index % len(context.working)]
        while not stop.is_set():
            reply = context.invoke(request.body, request.content_type, accept=request.accept)
            statuses.append(reply.status)

    clients = [
        threading.Thread(target=keep_busy, args=(i,), daemon=True) for i in range(BUSY_CLIENTS)
    ]
    for client in clients:
        client.start()
    time.sleep(0.3)  # let the invocations occupy the workers first
    pings: list[Reply] = []
    deadline = time.monotonic() + BUSY_S
    while time.monotonic() < deadline:
        pings.append(context.ping(PING_LIMIT_S + 0.5))
        time.sleep(0.1)
    stop.set()
    for client in clients:
        client.join(timeout=65)
    times = [p.elapsed_s for p in pings]
    measured = {
        "pings": len(pings),
        "p50_ms": _ms(statistics.median(times)),
        "max_ms": _ms(max(times)),
        "concurrent_invocations": BUSY_CLIENTS,
        "invocations_completed": len(statuses),
    }
    bad = [f"ping {i}: {p.describe()}" for i, p in enumerate(pings, 1) if _bad_ping(p)]
    if bad:
        return Outcome.failed(
            f"{len(bad)} of {len(pings)} pings failed the 2 s rule while {BUSY_CLIENTS} "
            "invocations ran",
            [
                *bad[:5],
                "a server whose workers all handle /invocations cannot answer /ping: run more "
                "workers/threads, or an async server",
            ],
            **measured,
        )
    return Outcome.passed(
        f"{len(pings)} pings under load of {BUSY_CLIENTS} concurrent invocations, "
        f"max {measured['max_ms']} ms",
        **measured,
    )


PING_CHECKS = (
    LiveCheck(LATENCY, check_latency),
    LiveCheck(ACCEPT, check_accept),
    LiveCheck(WHILE_BUSY, check_while_busy),
)
