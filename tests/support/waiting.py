"""Waiting on conditions with a deadline: the only synchronisation tests use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline."""


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call `probe` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise WaitTimeout(f"after {timeout:.0f}s: {text}")
        time.sleep(interval)


async def async_wait_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    interval: float = 0.1,
    message: str = "condition not met",
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"after {timeout:.0f}s: {message}")
        await asyncio.sleep(interval)
