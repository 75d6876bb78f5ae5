"""The container slots of asynchronous endpoints: at most MaxConcurrentInvocationsPerInstance
requests on each instance at once, counted while the container works on them.

AWS defines that setting as "the maximum number of concurrent requests sent by the SageMaker
client to the model container", so reading the input from S3 and writing the answer back are
outside the slot: a request downloads its input first, then waits here for the least busy
healthy instance with room, and gives the slot back as soon as the container has answered.
That keeps a container as busy as AWS would keep it while S3 is slow. Slots go out in the
order the requests were taken from the queue (a ticket each), so the container still sees
them in arrival order however the downloads finish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from smlocal.emulator.endpoint import Endpoint, EndpointStatus, Instance

__all__ = ["PREFETCH_FACTOR", "ContainerSlots"]

# How many requests per container slot the dispatcher takes from the queue at once: the
# extra ones read their input from S3 while the container works on the others.
PREFETCH_FACTOR = 2
# Health changes are not signalled here; a waiting request looks again this often.
_RECHECK_S = 0.2


class ContainerSlots:
    def __init__(self) -> None:
        self._busy: dict[str, int] = {}  # container id -> requests the container works on
        self._released = asyncio.Event()
        self._tickets: dict[str, list[int]] = {}  # endpoint -> tickets waiting, oldest first
        self._next_ticket = 0

    def ticket(self, endpoint: str) -> int:
        """A place in line for ``endpoint``'s slots, taken when a request leaves the queue."""
        self._next_ticket += 1
        self._tickets.setdefault(endpoint, []).append(self._next_ticket)
        return self._next_ticket

    def withdraw(self, endpoint: str, ticket: int) -> None:
        """Leave the line (done, failed or given up); nothing if the ticket got its slot."""
        waiting = self._tickets.get(endpoint, [])
        if ticket in waiting:
            waiting.remove(ticket)
            if not waiting:
                del self._tickets[endpoint]
            self._released.set()

    def busy(self, instance: Instance) -> int:
        return self._busy.get(instance.container.id, 0)

    def capacity(self, endpoint: Endpoint, cap: int) -> int:
        """Slots of the endpoint's healthy instances (weighted variants), free or not."""
        if endpoint.status != EndpointStatus.IN_SERVICE:
            return 0
        return cap * len(self._candidates(endpoint))

    @contextlib.asynccontextmanager
    async def hold(
        self, endpoint: Endpoint, cap: int, ticket: int, still_current: Callable[[], bool]
    ) -> AsyncIterator[Instance | None]:
        """The least busy instance with a free slot, held for the block, once every older
        ticket of the endpoint has had its turn; None when the endpoint went away (deleted, or
        replaced by an update) while this request waited."""
        instance = await self._wait_for_room(endpoint, cap, ticket, still_current)
        self.withdraw(endpoint.spec.name, ticket)
        if instance is None:
            yield None
            return
        cid = instance.container.id
        self._busy[cid] = self._busy.get(cid, 0) + 1
        try:
            yield instance
        finally:
            self._busy[cid] -= 1
            if not self._busy[cid]:
                del self._busy[cid]
            self._released.set()

    async def _wait_for_room(
        self, endpoint: Endpoint, cap: int, ticket: int, still_current: Callable[[], bool]
    ) -> Instance | None:
        line = self._tickets.get(endpoint.spec.name, [])
        while still_current():
            if endpoint.status == EndpointStatus.IN_SERVICE and line and line[0] == ticket:
                free = [i for i in self._candidates(endpoint) if self.busy(i) < cap]
                if free:
                    return min(free, key=self.busy)
            self._released.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), _RECHECK_S)
        return None

    @staticmethod
    def _candidates(endpoint: Endpoint) -> list[Instance]:
        return [
            instance
            for variant in endpoint.spec.variants
            if variant.weight > 0
            for instance in endpoint.healthy(variant.name)
        ]
