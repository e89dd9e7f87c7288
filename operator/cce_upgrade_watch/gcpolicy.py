"""Python's cyclic garbage collector, tuned for a process of long-lived watches.

The operator holds a few hundred Python objects per watch (its loop, the newest
body, the parsed answer, the stored status) for as long as the watch lives. The
collector's full (generation 2) pass walks every one of them to find the few
cycles that polls leave behind, and it runs again whenever the objects that
survived the younger passes reach a quarter of the old ones. At N=10,000 one
full pass took 0.9 s of CPU, every two minutes or so: a fifth of the idle
operator's CPU, and a pause that delays every poll due in it
(docs/PERFORMANCE.md).

So once a full pass has finished, what it left alive is frozen (`gc.freeze`):
moved to a generation no later pass walks. A full pass then costs what was
allocated since the last one, not the whole fleet. Frozen objects are still
freed by reference counting when nothing refers to them; only a reference
cycle among them would outlive its use. `collect_frozen_every` gives the frozen
objects back to the collector once an hour, collects once over everything and
freezes again, so such a cycle lives at most an hour.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "REFREEZE_INTERVAL",
    "collect_frozen",
    "collect_frozen_every",
    "freeze_after_full_collections",
    "stop_freezing",
]

logger = logging.getLogger(__name__)

#: How often the frozen objects are collected over once (seconds).
REFREEZE_INTERVAL = 3600.0


#: Whether the process is settled enough to freeze (see `freeze_after_full_collections`).
_settled: Callable[[], bool] = lambda: True  # noqa: E731


def _freeze_after_full(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2 and _settled():
        gc.freeze()


def freeze_after_full_collections(settled: Callable[[], bool] | None = None) -> None:
    """From now on, freeze what every full collection leaves alive (idempotent),
    while `settled()` says so.

    During a burst (start-up, thousands of new objects) much of what is alive at
    a full pass is work in flight: a frozen cycle of it would stay until the
    hourly collection, and at N=10,000 that raised the peak RSS by 15-30 MiB.
    So the operator freezes only once no watch was added for a minute.
    """
    global _settled
    _settled = settled or (lambda: True)
    if _freeze_after_full not in gc.callbacks:
        gc.callbacks.append(_freeze_after_full)


def stop_freezing() -> None:
    """Undo `freeze_after_full_collections` and unfreeze everything (tests)."""
    if _freeze_after_full in gc.callbacks:
        gc.callbacks.remove(_freeze_after_full)
    gc.unfreeze()


def collect_frozen() -> int:
    """Unfreeze, collect every generation (the callback freezes the survivors
    again if installed); returns the number of unreachable objects found."""
    gc.unfreeze()
    return gc.collect()


async def collect_frozen_every(interval: float = REFREEZE_INTERVAL) -> None:
    """`collect_frozen` every `interval` seconds, for ever."""
    while True:
        await asyncio.sleep(interval)
        started = time.process_time()
        found = collect_frozen()
        logger.debug(
            "garbage collection over %d frozen objects: %d unreachable, %.2f s of CPU",
            gc.get_freeze_count(),
            found,
            time.process_time() - started,
        )
