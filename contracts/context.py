"""What the live checks share: where the container answers, what it accepts, how to judge health.

:func:`learn` runs once after startup. It sends the spec's examples and small JSON/CSV probe
bodies, and keeps every request that got a 2xx as a *working request* — the traffic other
checks build on (Accept variants, extra headers, concurrency, load while pinging). Without a
spec, the content types that answered 2xx (or a 4xx other than 415: understood, but not that
body) count as accepted; with a spec, its declared types do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from smlocal.contracts.specfile import ContractSpec
from smlocal.contracts.wire import Address, Reply, call
from smlocal.emulator.backend import RunningContainer
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.errors import BackendError
from smlocal.emulator.instance_types import InstanceType

__all__ = [
    "PROBE_BODIES",
    "Answer",
    "LiveContext",
    "ProbeResult",
    "WorkingRequest",
    "learn",
    "live_address",
]

JSON = "application/json"
CSV = "text/csv"
# Shapes AWS's examples and common frameworks accept; any 2xx teaches us a working request.
PROBE_BODIES: dict[str, tuple[bytes, ...]] = {
    JSON: (
        b'{"instances": [[0.0, 0.0, 0.0, 0.0]]}',
        b'{"inputs": "smlocal contract probe"}',
        b"[[0.0, 0.0, 0.0, 0.0]]",
    ),
    CSV: (b"0.0,0.0,0.0,0.0\n", b"0.0\n"),
}
HEALTHY_PING_TIMEOUT_S = 10.0
# The /ping rule's own limit: a healthy container answers within it on a working route.
DIRECT_ROUTE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class WorkingRequest:
    name: str
    content_type: str
    body: bytes
    accept: str = "*/*"


@dataclass(frozen=True)
class Answer:
    """One /invocations reply, as the response-limits check judges it."""

    request: str
    status: int | None
    size: int
    elapsed_s: float
    error: str = ""


@dataclass(frozen=True)
class ProbeResult:
    content_type: str
    replies: tuple[Reply, ...]

    @property
    def accepted(self) -> bool:
        return any(r.ok for r in self.replies)

    @property
    def understood(self) -> bool:
        """Accepted, or refused only the body (a 4xx other than 415)."""
        return self.accepted or any(
            r.status is not None and 400 <= r.status < 500 and r.status != 415 for r in self.replies
        )


@dataclass
class LiveContext:
    address: Address
    """Where the checks reach the container's server: its own socket where the host can route
    to it, else Docker's published port."""
    container_id: str
    backend: DockerBackend
    instance: InstanceType
    spec: ContractSpec | None
    probes: dict[str, ProbeResult] = field(default_factory=dict)
    working: list[WorkingRequest] = field(default_factory=list)
    stop_grace_s: float = 30.0
    read_only_model: bool = True
    answers: list[Answer] = field(default_factory=list)
    """Every /invocations reply any check got (appended from the concurrency check's threads
    too: list.append is atomic)."""
    through_proxy: bool = False
    """True when ``address`` is Docker's port proxy, which accepts connections on the
    container's behalf (Docker Desktop): socket-level timings then describe the proxy."""
    listen_backlog: Callable[[], int | None] | None = None
    """Reads the listen backlog of the container's server socket (``ss -ltn``'s Send-Q in its
    network namespace); None, or returning None, when it cannot be read."""

    def declared_concurrency(self) -> int | None:
        """The spec's ``concurrency`` when the spec states it (not the default)."""
        if self.spec is None or "concurrency" not in self.spec.model_fields_set:
            return None
        return self.spec.concurrency

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        *,
        accept: str | None = "*/*",
        extra: dict[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> Reply:
        # An Accept header is always sent unless a check asks for none: the accept check is
        # the one place that judges a missing Accept, so no other check trips over it.
        headers: dict[str, str] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        headers.update(extra or {})
        reply = call(
            self.address, "POST", "/invocations", body=body, headers=headers, timeout_s=timeout_s
        )
        request = f"{content_type or '(no Content-Type)'} body of {len(body)} bytes"
        self.answers.append(
            Answer(request, reply.status, len(reply.body), reply.elapsed_s, reply.error)
        )
        return reply

    def ping(self, timeout_s: float = 2.0) -> Reply:
        return call(self.address, "GET", "/ping", timeout_s=timeout_s)

    def accepted_types(self) -> tuple[str, ...]:
        """The request types judged: declared by the spec, else learned by probing."""
        if self.spec is not None and self.spec.declared_content_types:
            return self.spec.declared_content_types
        return tuple(t for t, probe in self.probes.items() if probe.understood)

    def health_problem(self) -> str | None:
        """Why the container is not healthy any more (exited, OOM, /ping not 200), or None."""
        try:
            state = self.backend.state(self.container_id)
        except BackendError as error:
            return str(error)
        if not state.running:
            oom = " (OOM-killed)" if state.oom_killed else ""
            logs = self.backend.logs(self.container_id, tail=5).strip().replace("\n", " | ")
            return f"container exited with code {state.exit_code}{oom}; last log lines: {logs}"
        reply = self.ping(HEALTHY_PING_TIMEOUT_S)
        if reply.status != 200:
            return f"/ping no longer answers 200: {reply.describe()}"
        return None


def live_address(container: RunningContainer) -> tuple[Address, bool]:
    """The container's own socket when the host can route to it, else the published port.

    SageMaker's front end connects to the container itself. Docker's published port on the
    loopback address is served by docker-proxy, which accepts every connection at once and only
    then dials the container, so socket-level timings through it describe the proxy. Returns
    the address and whether it is the proxy. The route is proven by a 200 to /ping, not a bare
    connect, so a bridge range that routes to some other machine is not mistaken for it.
    """
    direct = container.direct
    if direct is not None and call(direct, "GET", "/ping", timeout_s=DIRECT_ROUTE_TIMEOUT_S).ok:
        return direct, False
    return container.published, container.direct != container.published


def learn(context: LiveContext) -> None:
    """Fill ``context.probes`` and ``context.working`` (see the module docstring)."""
    spec = context.spec
    if spec is not None:
        for example in spec.examples:
            if 200 <= example.expect.status < 300:
                context.working.append(
                    WorkingRequest(
                        example.name,
                        example.content_type,
                        example.payload(),
                        example.accept or "*/*",
                    )
                )
    with_examples = {w.content_type.split(";")[0].strip().lower() for w in context.working}
    declared = spec.declared_content_types if spec is not None else ()
    for content_type, bodies in PROBE_BODIES.items():
        replies = []
        for index, body in enumerate(bodies):
            reply = context.invoke(body, content_type)
            replies.append(reply)
            if reply.ok:
                wanted = not declared or content_type in declared
                if wanted and content_type not in with_examples:
                    context.working.append(
                        WorkingRequest(f"probe-{content_type}-{index}", content_type, body)
                    )
                break
        context.probes[content_type] = ProbeResult(content_type, tuple(replies))
