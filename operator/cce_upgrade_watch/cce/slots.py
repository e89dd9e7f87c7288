"""`FairSlots`: a semaphore shared fairly between tenants.

The client has a fixed number of request slots for every watched cluster
together. With a plain semaphore, one tenant whose endpoint answers slowly
(a byte every few seconds) can hold every slot, and the other tenants' polls
queue behind it. Here, each caller names its tenant (the watch's namespace):

- while no other tenant waits, a tenant may use every free slot (nothing idles);
- while another tenant waits, a tenant is given no more than half the slots
  (`share`), so at least the other half is left for the others;
- waiting tenants are served in turn (round robin), each tenant's own callers
  first come, first served.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress


class FairSlots:
    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError("total must be at least 1")
        self.total = total
        #: What a tenant may hold while another tenant waits.
        self.share = max(1, total // 2)
        self._used = 0
        self._held: dict[str, int] = {}
        # Tenants with callers waiting, in turn order; each with its callers in order.
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    def held(self, tenant: str) -> int:
        return self._held.get(tenant, 0)

    @asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        await self.acquire(tenant)
        try:
            yield
        finally:
            self.release(tenant)

    async def acquire(self, tenant: str) -> None:
        if tenant not in self._waiting and self._may_take(tenant):
            self._take(tenant)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(tenant)  # granted, then cancelled before it was used
            else:
                self._forget(tenant, waiter)
            raise

    def release(self, tenant: str) -> None:
        held = self._held.get(tenant, 0)
        if held <= 0:
            raise RuntimeError(f"release without acquire ({tenant!r})")
        if held == 1:
            del self._held[tenant]
        else:
            self._held[tenant] = held - 1
        self._used -= 1
        self._dispatch()

    def _may_take(self, tenant: str) -> bool:
        if self._used >= self.total:
            return False
        others_wait = any(other != tenant for other in self._waiting)
        return not others_wait or self.held(tenant) < self.share

    def _take(self, tenant: str) -> None:
        self._used += 1
        self._held[tenant] = self._held.get(tenant, 0) + 1

    def _dispatch(self) -> None:
        while self._used < self.total and self._waiting:
            for tenant in list(self._waiting):
                if self._may_take(tenant):
                    break
            else:
                return  # every waiting tenant has its share; wait for one of them to finish
            waiters = self._waiting.pop(tenant)
            waiter = waiters.popleft()
            if waiters:
                self._waiting[tenant] = waiters  # to the back of the turn order
            self._take(tenant)
            waiter.set_result(None)

    def _forget(self, tenant: str, waiter: asyncio.Future[None]) -> None:
        waiters = self._waiting.get(tenant)
        if waiters is None:
            return
        with suppress(ValueError):
            waiters.remove(waiter)
        if not waiters:
            del self._waiting[tenant]
        self._dispatch()  # a tenant that left may have been what held the others back
