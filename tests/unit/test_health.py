"""Startup health gating: first good ping wins, exits are reported at once, windows close."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from smlocal.emulator.backend import ContainerRun
from smlocal.emulator.endpoint import Endpoint
from smlocal.emulator.errors import EndpointFailedError
from smlocal.emulator.health import WaitStrategy, wait_until_healthy
from smlocal.emulator.spec import build_spec
from tests.unit.fakes import FakeBackend, FakeImage


def _run(image: str) -> ContainerRun:
    return ContainerRun(
        image=image,
        name=f"t-{image}",
        model_dir=None,
        env={},
        cpus=1,
        memory_bytes=1 << 30,
        labels={},
    )


async def _wait(backend: FakeBackend, image: str, deadline_s: float) -> float:
    container = backend.start(_run(image))
    async with aiohttp.ClientSession() as session:
        return await wait_until_healthy(
            backend, container, WaitStrategy(deadline_s=deadline_s, interval_s=0.02), session
        )


BACKEND = FakeBackend(
    {
        "good": FakeImage(),
        "exits": FakeImage(exit_code=3, log_lines=("boom: missing model file",)),
        "silent": FakeImage(listens=False, log_lines=("loading forever",)),
        "slow-ping": FakeImage(ping_delay_s=0.3),
    }
)


def test_healthy_container_passes_quickly() -> None:
    took = asyncio.run(_wait(BACKEND, "good", 5))
    assert took < 1.0


def test_exit_at_start_is_reported_at_once_with_code_and_logs() -> None:
    started = time.monotonic()
    with pytest.raises(EndpointFailedError) as caught:
        asyncio.run(_wait(BACKEND, "exits", 60))
    assert time.monotonic() - started < 2.0  # not the 60 s window
    assert caught.value.exit_status == 3
    assert "exited with code 3" in str(caught.value)
    assert "boom: missing model file" in caught.value.logs


def test_container_that_never_listens_fails_when_the_window_closes() -> None:
    started = time.monotonic()
    with pytest.raises(EndpointFailedError) as caught:
        asyncio.run(_wait(BACKEND, "silent", 0.5))
    assert 0.5 <= time.monotonic() - started < 3.0
    assert "startup window" in str(caught.value)
    assert "connection failed" in str(caught.value)
    assert "loading forever" in caught.value.logs


def test_ping_slower_than_the_timeout_is_a_failed_ping() -> None:
    async def attempt() -> float:
        container = BACKEND.start(_run("slow-ping"))
        async with aiohttp.ClientSession() as session:
            strategy = WaitStrategy(deadline_s=0.8, interval_s=0.02, ping_timeout_s=0.1)
            return await wait_until_healthy(BACKEND, container, strategy, session)

    with pytest.raises(EndpointFailedError) as caught:
        asyncio.run(attempt())
    assert "no answer within 0.1 s" in str(caught.value)


def test_endpoint_goes_failed_and_stops_its_other_instances(tmp_path: Path) -> None:
    backend = FakeBackend({"good": FakeImage(), "exits": FakeImage(exit_code=1)})
    spec = build_spec(
        name="mixed",
        variants=[{"name": "A", "image": "good"}, {"name": "B", "image": "exits"}],
    )
    endpoint = Endpoint(spec, backend, {})

    async def start() -> None:
        try:
            await endpoint.start()
        finally:
            await endpoint.stop()

    with pytest.raises(EndpointFailedError):
        asyncio.run(start())
    assert endpoint.failure_reason
    assert all(c.server is None for c in backend.containers.values())


def test_runtime_api_socket_is_tcp_so_asyncio_sets_nodelay() -> None:
    # With proto 0, asyncio skips TCP_NODELAY on accepted sockets and every response with a
    # body stalls ~40 ms on delayed ACKs (found by benchmarks/runtime_api.py).
    import socket

    from smlocal.emulator.server import bind_socket

    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_one_instance_exiting_fails_creation_without_waiting_for_the_others(
    tmp_path: Path,
) -> None:
    backend = FakeBackend({"silent": FakeImage(listens=False), "exits": FakeImage(exit_code=2)})
    spec = build_spec(
        name="mixed",
        variants=[{"name": "A", "image": "silent"}, {"name": "B", "image": "exits"}],
        startup_timeout_s=60,
    )
    endpoint = Endpoint(spec, backend, {})
    started = time.monotonic()

    async def start() -> None:
        try:
            await endpoint.start()
        finally:
            await endpoint.stop()

    with pytest.raises(EndpointFailedError) as caught:
        asyncio.run(start())
    assert time.monotonic() - started < 3.0  # not A's 60 s window
    assert caught.value.exit_status == 2
