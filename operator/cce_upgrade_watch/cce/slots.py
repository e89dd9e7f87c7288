"""`FairSlots`: a semaphore shared fairly between tenants.

The client has a fixed number of request slots for every watched cluster
together. With a plain semaphore, one tenant whose endpoint answers slowly
(a byte every few seconds) can hold every slot, and the other tenants' polls
queue behind it. Here, each caller names its tenant (the watch's namespace):

- a tenant alone (no other tenant has asked for a slot within `window`
  seconds) may use every slot, so a single-namespace install loses nothing;
- otherwise a tenant is given no more than half the slots (`share`). "Waiting"
  is not enough to check: a slow tenant's requests hold their slots for the whole
  deadline, so slots it took while a healthy tenant happened to be between two
  polls would be held when that tenant's next poll comes;
- waiting tenants are served in turn (round robin), each tenant's own callers
  first come, first served.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

#: Seconds a tenant counts as active after it last asked for a slot: longer than
#: the longest poll interval that matters for fairness (an idle watch polls every 5m
#: by default, but a tenant with several watches asks far more often).
ACTIVE_WINDOW = 60.0


class FairSlots:
    def __init__(
        self,
        total: int,
        *,
        window: float = ACTIVE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total < 1:
            raise ValueError("total must be at least 1")
        self.total = total
        #: What a tenant may hold while another tenant is active.
        self.share = max(1, total // 2)
        self._window = window
        self._clock = clock
        # When each tenant last asked for a slot; pruned once per window, so it
        # holds the tenants of the last one or two windows.
        self._asked: dict[str, float] = {}
        self._pruned = clock()
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
        self._note(tenant)
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

    def _note(self, tenant: str) -> None:
        self._asked[tenant] = self._prune()

    def _prune(self) -> float:
        """Forget tenants quiet for longer than the window (at most once per window)."""
        now = self._clock()
        if now - self._pruned > self._window:
            self._asked = {t: at for t, at in self._asked.items() if now - at <= self._window}
            self._pruned = now
        return now

    def _others_active(self, tenant: str) -> bool:
        waiting_others = len(self._waiting) - (tenant in self._waiting)
        asked_others = len(self._asked) - (tenant in self._asked)
        return waiting_others > 0 or asked_others > 0

    def _may_take(self, tenant: str) -> bool:
        if self._used >= self.total:
            return False
        return self.held(tenant) < self.share or not self._others_active(tenant)

    def _take(self, tenant: str) -> None:
        self._used += 1
        self._held[tenant] = self._held.get(tenant, 0) + 1

    def _dispatch(self) -> None:
        self._prune()
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
            if waiter.done():
                continue  # cancelled, its task not yet told: nobody to give the slot to
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
