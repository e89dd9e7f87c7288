"""`poll-now` cannot hammer the cloud or the Secret: at most one forced poll per
object per FORCED_POLL_MIN_SECONDS; a request inside the window is served when it
ends, once however many came. Credentials no live watch uses are dropped."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from cce_upgrade_watch.credentials import CredentialsCache
from cce_upgrade_watch.pollloop import FORCED_POLL_MIN_SECONDS, PollLoop
from tests.unit.operator.test_pollloop import (
    RUNNING,
    FakeCce,
    FakeSecrets,
    FakeWriter,
    body,
    calls_reach,
    make_loop,
    scheduled,
)

ANNOTATION = "cce.upgradewatch.io/poll-now"


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Running:
    """A poll loop running on a fake clock, polled once already."""

    loop: PollLoop
    cce: FakeCce
    secrets: FakeSecrets
    obj: dict[str, Any]
    clock: Clock

    async def polls(self, count: int) -> None:
        await calls_reach(self.cce, count)

    def annotate(self, value: str) -> None:
        self.obj["metadata"]["annotations"][ANNOTATION] = value
        self.loop.notice(self.obj)


@asynccontextmanager
async def running() -> AsyncIterator[Running]:
    cce, secrets = FakeCce(), FakeSecrets()
    cce.answers = [RUNNING]
    obj = body(pollInterval="1h", activePollInterval="1h")
    loop, _ = make_loop(obj, cce, FakeWriter(), secrets)
    clock = Clock()
    loop._clock = clock
    async with scheduled(loop):
        state = Running(loop, cce, secrets, obj, clock)
        await state.polls(1)
        yield state


async def test_poll_now_at_most_once_per_window() -> None:
    async with running() as it:
        it.annotate("1")  # the first forced poll: at once
        await it.polls(2)
        assert it.secrets.reads == 2
        # A flood of new values inside the window: nothing at once ...
        for value in range(2, 50):
            it.clock.now += 0.1
            it.annotate(str(value))
        await asyncio.sleep(0.05)  # an observation window: no poll may happen in it
        assert len(it.cce.calls) == 2
        assert it.secrets.reads == 2
        # ... but one poll is due when the window ends, not more.
        handle = it.loop._deferred_poll_now
        assert handle is not None
        delay = handle.when() - asyncio.get_running_loop().time()
        # Due 10 s after the last forced poll: the first request inside the window set it.
        assert 0 < delay <= FORCED_POLL_MIN_SECONDS - 0.1 + 0.01
        fire = handle._callback  # type: ignore[attr-defined]  # what the loop calls at `when`
        handle.cancel()
        it.clock.now += delay
        fire()
        await it.polls(3)
        await asyncio.sleep(0.05)
        assert len(it.cce.calls) == 3
        assert it.secrets.reads == 3
        assert it.loop._deferred_poll_now is None


async def test_a_spec_change_is_never_held_back() -> None:
    async with running() as it:
        it.annotate("1")
        await it.polls(2)
        it.obj["metadata"]["generation"] = 2
        it.loop.notice(it.obj)
        await it.polls(3)


def encoded(**values: str) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


async def test_retain_drops_credentials_no_watch_uses() -> None:
    async def read(namespace: str, name: str) -> dict[str, str]:
        return encoded(token=f"{namespace}/{name}")

    cache = CredentialsCache(read, ttl=300)
    for key in (("a", "s"), ("b", "s"), ("c", "t")):
        await cache.get(*key)
    assert len(cache) == 3
    cache.retain({("b", "s")})
    assert len(cache) == 1
    assert cache.reads == 3
    await cache.get("b", "s")
    assert cache.reads == 3  # the one still in use stayed cached


@pytest.mark.parametrize("ttl", [60.0, 300.0])
async def test_expired_entries_are_swept(ttl: float) -> None:
    clock = Clock()

    async def read(namespace: str, name: str) -> dict[str, str]:
        return encoded(token="T")

    cache = CredentialsCache(read, ttl=ttl, clock=clock)
    await cache.get("gone", "s")  # a watch that was deleted later
    clock.now += ttl + 1
    await cache.get("live", "s")
    assert len(cache) == 1
