"""Container logs off the hot path (issue 15): the service appends them to their files in
batches, the log pump reads a trickle paced, and a foreground serve (or ``logs --follow``)
shows a poll's lines in one write, plainly when stdout is not a terminal. Every line still
arrives, in order, the last ones too. No Docker: fake containers, real service and boto3."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from smlocal.cli import output
from smlocal.cli.serve_console import ConsoleSink
from smlocal.emulator import log_files
from smlocal.emulator.docker_logs import split_frames
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.log_files import LogFiles, paced
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.service.client import sagemaker_client
from smlocal.emulator.service.quick_serve import LogTail, serve_attached
from smlocal.emulator.spec import build_spec
from smlocal.emulator.state import StateDir
from tests.unit.fakes import FakeBackend, FakeImage

FAST = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)


def _until(condition: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


# ---- the service's log files -----------------------------------------------------------


def test_lines_wait_in_the_buffer_and_close_writes_them_all_in_order(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    files: LogFiles[str] = LogFiles(lambda _k: path.open("a"), flush_after_s=60)
    for i in range(100):
        files.append("e", f"line {i}\n")
    assert path.read_text() == ""  # not a write per line
    files.close()
    assert path.read_text().splitlines() == [f"line {i}" for i in range(100)]


def test_the_flusher_writes_a_batch_soon_without_a_close(tmp_path: Path) -> None:
    paths = {key: tmp_path / f"{key}.log" for key in ("a", "b")}
    files: LogFiles[str] = LogFiles(lambda k: paths[k].open("a"), flush_after_s=0.02)
    try:
        files.append("a", "one\n")
        files.append("b", "two\n")
        assert _until(lambda: paths["a"].read_text() == "one\n", 2)
        assert _until(lambda: paths["b"].read_text() == "two\n", 2)
        files.append("a", "three\n")  # a second batch wakes the same flusher
        assert _until(lambda: paths["a"].read_text() == "one\nthree\n", 2)
    finally:
        files.close()


def test_a_line_after_close_reopens_the_file(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    files: LogFiles[str] = LogFiles(lambda _k: path.open("a"), flush_after_s=0.02)
    files.append("e", "before\n")
    files.close()
    files.append("e", "late\n")  # a pump's last line after the endpoint's close
    assert _until(lambda: path.read_text() == "before\nlate\n", 2)
    files.close()


def test_concurrent_pumps_keep_their_own_order(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    files: LogFiles[str] = LogFiles(lambda _k: path.open("a"), flush_after_s=0.001)

    def pump(name: str) -> None:
        for i in range(2000):
            files.append("e", f"{name} {i}\n")

    threads = [threading.Thread(target=pump, args=(n,)) for n in ("x", "y", "z")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files.close()
    lines = path.read_text().splitlines()
    for name in ("x", "y", "z"):
        assert [line for line in lines if line.startswith(name)] == [
            f"{name} {i}" for i in range(2000)
        ]


# ---- pacing the log stream -------------------------------------------------------------


class _Clock:
    """Stands in for the time module inside log_files: time passes only when told."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_read_that_waited_is_followed_by_a_pause_a_burst_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(log_files, "time", clock)

    def stream() -> Iterator[bytes]:
        clock.now += 1.0  # the container was quiet for a second
        yield b"a\n"
        yield b"b\n"  # queued meanwhile: no wait
        yield b"c\n"
        clock.now += 0.3
        yield b"d\n"

    assert list(paced(stream(), pause_s=0.05)) == [b"a\n", b"b\n", b"c\n", b"d\n"]
    assert clock.sleeps == [0.05, 0.05]  # after a and after d, the reads that waited


def test_paced_hands_on_each_chunk_before_it_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(log_files, "time", clock)

    def stream() -> Iterator[bytes]:
        clock.now += 1.0
        yield b"first\n"

    reader = paced(stream(), pause_s=0.05)
    assert next(reader) == b"first\n"
    assert clock.sleeps == []  # the line is out before any pause
    assert list(reader) == []


# ---- what the terminal (or a pipe) gets ------------------------------------------------


class _CountingFile(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


def test_a_batch_is_one_plain_write_when_stdout_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = _CountingFile()
    monkeypatch.setattr(output, "out", Console(file=target, force_terminal=False))
    lines = [f"AllTraffic/0 | [bold]line {i}[/] http://x" for i in range(50)] + ["no bar"]
    output.print_log_lines(lines)
    assert target.getvalue() == "\n".join(lines) + "\n"  # verbatim: no markup, no escapes
    assert (target.writes, target.flushes) == (1, 1)


def test_on_a_terminal_only_the_source_is_dimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    target = _CountingFile()
    console = Console(file=target, force_terminal=True, color_system="standard")
    monkeypatch.setattr(output, "out", console)
    output.print_log_lines(["AllTraffic/0 | hello [red]x[/]", "plain"])
    assert target.getvalue() == "\x1b[2mAllTraffic/0 |\x1b[0m hello [red]x[/]\nplain\n"
    assert target.writes == 1
    target.truncate(0)
    target.seek(0)
    output.print_log_lines(["AllTraffic/0 | hello"], dim_sources=False)  # `logs --follow`
    assert target.getvalue() == "AllTraffic/0 | hello\n"


def test_nothing_to_print_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    target = _CountingFile()
    monkeypatch.setattr(output, "out", Console(file=target))
    output.print_log_lines([])
    ConsoleSink(show_logs=False).container_logs(["AllTraffic/0 | x"])
    assert target.writes == 0


def test_log_tail_follow_emits_batches_in_order_and_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    path.write_text("")
    tail = LogTail(path, offset=0)
    batches: list[list[str]] = []
    asked = 0

    def keep_going() -> bool:
        nonlocal asked
        asked += 1
        with path.open("a") as handle:  # written as the endpoint goes away
            handle.write("last words\n")
        return asked < 2

    def writer() -> None:
        for i in range(200):
            with path.open("a") as handle:
                handle.write(f"line {i}\n")
            if i % 20 == 0:
                time.sleep(0.03)

    thread = threading.Thread(target=writer)
    thread.start()
    tail.follow(batches.append, keep_going)
    thread.join()
    shown = [line for batch in batches for line in batch]
    assert [line for line in shown if line.startswith("line")] == [f"line {i}" for i in range(200)]
    assert shown[-1] == "last words"
    assert len(batches) < 50  # a batch per poll, not a call per line
    assert all(batches)


# ---- a foreground serve on the service ---------------------------------------------------


class _Events:
    def __init__(self) -> None:
        self.statuses: list[str] = []
        self.batches: list[list[str]] = []

    def status(self, endpoint: str, status: str, detail: str) -> None:
        self.statuses.append(status)

    def container_logs(self, lines: list[str]) -> None:
        self.batches.append(list(lines))

    def container_log(self, line: str) -> None:  # pragma: no cover - batches are preferred
        raise AssertionError("serve_attached should hand over batches")


LINES = tuple(f"request {i}" for i in range(300))


def test_serve_attached_shows_every_line_in_order_in_batches(tmp_path: Path) -> None:
    backend = FakeBackend({"chatty:1": FakeImage(log_lines=LINES)})
    state = StateDir(tmp_path / "home")
    with service_in_background(backend, state=state, settings=FAST) as url:
        client = sagemaker_client(url)
        events = _Events()

        def delete_once_shown() -> None:
            _until(lambda: sum(map(len, events.batches)) >= len(LINES), 20)
            client.delete_endpoint(EndpointName="chatty")

        other = threading.Thread(target=delete_once_shown)
        other.start()
        spec = build_spec(name="chatty", variants=[{"image": "chatty:1"}])
        outcome = serve_attached(url, spec, events, state)
        other.join()
    assert outcome.status == "Deleted"
    shown = [line for batch in events.batches for line in batch]
    assert [line.partition(" | ")[2] for line in shown if "request" in line] == list(LINES)
    assert all(line.startswith("AllTraffic/0 | ") for line in shown if "request" in line)
    assert len(events.batches) < len(LINES) / 10


def test_a_failed_endpoint_still_shows_its_last_lines(tmp_path: Path) -> None:
    last = ("loading model", "Traceback: no model here", "exiting with 3")
    backend = FakeBackend({"broken:1": FakeImage(exit_code=3, log_lines=last)})
    state = StateDir(tmp_path / "home")
    with service_in_background(backend, state=state, settings=FAST) as url:
        events = _Events()
        spec = build_spec(name="broken", variants=[{"image": "broken:1"}])
        outcome = serve_attached(url, spec, events, state)
    assert outcome.status == "Failed"
    assert "3" in outcome.failure_reason
    shown = [line.partition(" | ")[2] for batch in events.batches for line in batch]
    assert [line for line in shown if line in last] == list(last)


# ---- Docker's multiplexed frames ----------------------------------------------------------


def _frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_whole_frames_are_joined_and_a_partial_one_waits() -> None:
    data = _frame(1, b"out 1\n") + _frame(2, b"err 1\n") + _frame(1, b"") + _frame(1, b"out 2\n")
    torn = _frame(1, b"out 3\n")
    payloads, rest = split_frames(data + torn[:5])
    assert payloads == b"out 1\nerr 1\nout 2\n"
    assert rest == torn[:5]
    payloads, rest = split_frames(rest + torn[5:11])  # the header whole, the payload not yet
    assert (payloads, rest) == (b"", torn[:11])
    assert split_frames(rest + torn[11:]) == (b"out 3\n", b"")
