"""FairSlots: no tenant holds more than half the slots while another waits (issue 11.3)."""

from __future__ import annotations

import asyncio

import pytest

from cce_upgrade_watch.cce.slots import FairSlots


async def _settle() -> None:
    # Let every task that can run, run (the slots hand over through futures).
    for _ in range(10):
        await asyncio.sleep(0)


class Holders:
    """Tasks that take a slot and hold it until released by the test."""

    def __init__(self, slots: FairSlots) -> None:
        self.slots = slots
        self.holding: dict[str, list[asyncio.Event]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, tenant: str, count: int = 1) -> None:
        for _ in range(count):
            self.tasks.append(asyncio.ensure_future(self._hold(tenant)))

    async def _hold(self, tenant: str) -> None:
        async with self.slots.slot(tenant):
            done = asyncio.Event()
            self.holding.setdefault(tenant, []).append(done)
            await done.wait()

    def finish(self, tenant: str, count: int = 1) -> None:
        for _ in range(count):
            self.holding[tenant].pop(0).set()

    def held(self, tenant: str) -> int:
        return len(self.holding.get(tenant, []))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_a_lone_tenant_may_use_every_slot() -> None:
    slots = FairSlots(8)
    holders = Holders(slots)
    holders.start("slow", 20)
    await _settle()
    assert holders.held("slow") == 8
    await holders.close()


async def test_a_flooding_tenant_gives_back_slots_until_the_others_have_half() -> None:
    slots = FairSlots(8)
    holders = Holders(slots)
    holders.start("slow", 40)  # e.g. 40 drip-feeding watches in one namespace
    await _settle()
    assert holders.held("slow") == 8
    holders.start("healthy", 50)
    await _settle()
    assert holders.held("healthy") == 0  # every slot is busy: nothing is taken away
    # As the flooding tenant's requests end, freed slots go to the waiting tenant
    # until the flooder is down to half.
    for finished in range(1, 9):
        holders.finish("slow")
        await _settle()
        assert holders.held("healthy") == min(finished, slots.share)
    assert (holders.held("slow"), holders.held("healthy")) == (4, 4)
    # From then on the two share: each finished request is replaced by the same tenant's.
    for tenant in ("slow", "healthy", "healthy", "slow"):
        holders.finish(tenant)
        await _settle()
        assert (holders.held("slow"), holders.held("healthy")) == (4, 4)
    await holders.close()


async def test_a_tenant_between_two_polls_keeps_its_half() -> None:
    """A slow tenant must not take every slot while a healthy one is between polls:
    its requests would hold them for the whole deadline, and the healthy tenant's
    next poll would wait that long."""
    now = [0.0]
    slots = FairSlots(8, window=60, clock=lambda: now[0])
    holders = Holders(slots)
    holders.start("healthy")
    await _settle()
    holders.finish("healthy")  # one quick poll; the tenant is idle until its next
    await _settle()
    now[0] = 10.0
    holders.start("slow", 40)
    await _settle()
    assert holders.held("slow") == slots.share
    holders.start("healthy", 3)  # the next poll: slots are free for it at once
    await _settle()
    assert holders.held("healthy") == 3
    holders.finish("healthy", 3)
    await _settle()
    # Once the healthy tenant has been quiet for longer than the window, the slow
    # one is alone and may use every slot again.
    now[0] = 200.0
    holders.finish("slow")
    await _settle()
    assert holders.held("slow") == 8
    await holders.close()


async def test_waiting_tenants_are_served_in_turn() -> None:
    slots = FairSlots(2)
    holders = Holders(slots)
    holders.start("a", 2)
    await _settle()
    holders.start("b", 3)
    holders.start("c", 3)
    await _settle()
    served: list[str] = []
    for _ in range(4):
        before = {t: holders.held(t) for t in "bc"}
        holders.finish("a" if holders.held("a") else max("bc", key=holders.held))
        await _settle()
        served += [t for t in "bc" if holders.held(t) > before[t]]
    assert served[:2] in (["b", "c"], ["c", "b"])
    await holders.close()


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    slots = FairSlots(1)
    async with slots.slot("a"):
        waiter = asyncio.ensure_future(slots.acquire("b"))
        await _settle()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    await asyncio.wait_for(slots.acquire("c"), timeout=1)
    assert slots.held("c") == 1
    assert slots.held("b") == 0
    slots.release("c")


async def test_release_without_acquire_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        FairSlots(1).release("a")
    with pytest.raises(ValueError, match="at least 1"):
        FairSlots(0)
