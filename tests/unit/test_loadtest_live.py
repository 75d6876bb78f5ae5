"""The load test's progress off a terminal: one plain line per step, none lost at the end."""

from __future__ import annotations

import io

from rich.console import Console

from smlocal.loadtests.live import LiveView, plain_line


def test_one_line_per_step_off_a_terminal() -> None:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=False, width=200)
    with LiveView(console) as view:
        for step, users in ((1, 1), (2, 2)):
            view.label = f"iris — step {step:02d}: {users} users, 3 s"
            for second in range(3):
                view.update({"users": users, "rps": 100.0 * users + second, "p95_ms": 5})
            view.update({"users": 0, "rps": 0.0, "p95_ms": 5})  # Locust stopping the step
    lines = sink.getvalue().splitlines()
    assert lines == [
        "iris — step 01: 1 users, 3 s: users 1, req/s 102.0, p95 ms 5, errors 0",
        "iris — step 02: 2 users, 3 s: users 2, req/s 202.0, p95 ms 5, errors 0",
    ]


def test_errors_are_named_in_the_line() -> None:
    line = plain_line("s", {"users": 4, "rps": 1.5, "errors": {"500": 3, "timeout": 1}})
    assert line == "s: users 4, req/s 1.5, p95 ms -, errors 500: 3, timeout: 1"
