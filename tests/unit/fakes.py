"""An in-memory ContainerBackend for unit tests: each "container" is a real HTTP server in a thread.

A FakeImage says how its container behaves (answers, slow pings, exits, never listens), so the
emulator's lifecycle, health checks and runtime API run for real without Docker.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from smlocal.emulator.backend import ContainerInfo, ContainerRun, ContainerState, RunningContainer
from smlocal.emulator.errors import BackendError, ImageNotFoundError

# (method, path, headers, body) -> (status, headers, body)
Handler = Callable[[str, str, Mapping[str, str], bytes], tuple[int, dict[str, str], bytes]]


def _directives(headers: Mapping[str, str]) -> dict[str, str]:
    attrs = headers.get("x-amzn-sagemaker-custom-attributes", "")
    return dict(part.split("=", 1) for part in attrs.replace(";", ",").split(",") if "=" in part)


def echo_handler(
    method: str, path: str, headers: Mapping[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    if path == "/ping":
        return 200, {}, b""
    attrs = headers.get("x-amzn-sagemaker-custom-attributes", "")
    directives = _directives(headers)
    if "sleep" in directives:
        time.sleep(float(directives["sleep"]))
    reply = {"content-type": headers.get("content-type", "application/octet-stream")}
    if attrs:
        reply["x-amzn-sagemaker-custom-attributes"] = attrs
    if "status" in directives:
        return int(directives["status"]), reply, b'{"error": "fixture status"}'
    if directives.get("echo-headers") == "1":
        return 200, {"content-type": "application/json"}, json.dumps(dict(headers)).encode()
    return 200, reply, body


@dataclass
class FakeImage:
    handler: Handler = echo_handler
    exit_code: int | None = None  # exits at start with this code
    listens: bool = True
    ping_delay_s: float = 0.0
    healthy_pings: int | None = None  # after this many pings, /ping answers 500
    log_lines: tuple[str, ...] = ("fake container started",)


@dataclass
class FakeContainer:
    run: ContainerRun
    image: FakeImage
    server: ThreadingHTTPServer | None
    exit_code: int | None
    pings: int = 0
    requests: list[tuple[str, Mapping[str, str], bytes]] = field(default_factory=list)


class FakeBackend:
    def __init__(self, images: Mapping[str, FakeImage]) -> None:
        self.images = dict(images)
        self.containers: dict[str, FakeContainer] = {}
        self.stopped: list[str] = []
        self.removed: set[str] = set()
        # (container id, since) of every log stream followed
        self.follows: list[tuple[str, float | None]] = []
        # Test hook for a SIGKILLed service: while set, stop and remove do nothing (the dead
        # process never got to them), so its containers keep running.
        self.frozen = False

    def start(self, run: ContainerRun) -> RunningContainer:
        image = self.images.get(run.image)
        if image is None:
            raise ImageNotFoundError(f"image {run.image!r} not found")
        container_id = uuid.uuid4().hex
        server = None
        if image.exit_code is None and image.listens:
            server = self._server(container_id, image)
        self.containers[container_id] = FakeContainer(run, image, server, image.exit_code)
        address = ("127.0.0.1", server.server_address[1] if server else 1)
        return RunningContainer(container_id, run.name, address, None)

    def _server(self, container_id: str, image: FakeImage) -> ThreadingHTTPServer:
        backend = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body meet delayed ACKs (40 ms)

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                container = backend.containers[container_id]
                if container.server is None:  # stopped: a kept-alive connection is cut too
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path == "/ping":
                    container.pings += 1
                    time.sleep(image.ping_delay_s)
                    if image.healthy_pings is not None and container.pings > image.healthy_pings:
                        self._reply(500, {}, b"unhealthy")
                        return
                else:
                    container.requests.append((self.path, headers, body))
                status, reply_headers, reply = image.handler(self.command, self.path, headers, body)
                directives = _directives(headers)
                if "stream" in directives:
                    self._stream(reply, int(directives["stream"]), "break" in directives)
                    return
                self._reply(status, reply_headers, reply)

            def _stream(self, body: bytes, parts: int, broken: bool) -> None:
                """Answer in ``parts`` chunks (chunked encoding); ``broken``: hang up midway."""
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                size = max(1, -(-len(body) // parts))
                for number, start in enumerate(range(0, len(body), size)):
                    piece = body[start : start + size]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                    if broken and number == 0:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    time.sleep(0.05)
                self.wfile.write(b"0\r\n\r\n")

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _serve
            do_POST = _serve
            do_DELETE = _serve  # a multi-model container's unload

        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def state(self, container_id: str) -> ContainerState:
        container = self.containers[container_id]
        running = container.exit_code is None
        return ContainerState(running, container.exit_code, oom_killed=False)

    def logs(self, container_id: str, tail: int = 50) -> str:
        lines = self.containers[container_id].image.log_lines
        return "\n".join(lines[-tail:]) + "\n"

    def follow_logs(self, container_id: str, since: float | None = None) -> Iterator[bytes]:
        self.follows.append((container_id, since))
        if since is not None:
            return  # the fake writes its lines at start only: none since then
        for line in self.containers[container_id].image.log_lines:
            yield line.encode() + b"\n"

    def stop(self, container_id: str, timeout_s: float = 30.0) -> None:
        if self.frozen:
            return
        container = self.containers[container_id]
        if container.server is not None:
            container.server.shutdown()
            container.server.server_close()
            container.server = None
        if container.exit_code is None:
            container.exit_code = 0
        self.stopped.append(container_id)

    def remove(self, container_id: str) -> None:
        if self.frozen:
            return
        self.stop(container_id)
        self.removed.add(container_id)

    def find(self, labels: Mapping[str, str]) -> list[str]:
        return [
            cid
            for cid, c in self.containers.items()
            if cid not in self.removed and all(c.run.labels.get(k) == v for k, v in labels.items())
        ]

    def inspect(self, container_id: str) -> ContainerInfo:
        container = self.containers.get(container_id)
        if container is None or container_id in self.removed:
            raise BackendError(f"container {container_id[:12]} no longer exists")
        port = container.server.server_address[1] if container.server else 1
        return ContainerInfo(
            RunningContainer(container_id, container.run.name, ("127.0.0.1", int(port)), None),
            dict(container.run.labels),
            running=container.exit_code is None,
        )

    def running(self) -> list[str]:
        """Test helper: the containers that still run and are not removed."""
        return [
            cid
            for cid, c in self.containers.items()
            if c.exit_code is None and cid not in self.removed
        ]

    def kill(self, container_id: str, code: int = 137) -> None:
        """Test hook: the container dies."""
        self.stop(container_id)
        self.containers[container_id].exit_code = code
