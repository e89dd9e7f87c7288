"""The safety net for a deletion no watch event reported: list, and stop the orphans.

Polls stop when kopf hands over the object's DELETED event (`handlers.py`). With
no finalizer on the objects (`scheduler.py` replaced kopf's daemons, which needed
one), an object can be deleted while kopf's watch stream is broken for so long
that the API server no longer has the events since ("410 Gone", after an outage):
kopf then lists the objects again, and the deleted one is simply absent from that
listing; no event says it went. Its loop would poll the cloud until the operator
restarts. So, every resync interval, the watches of each namespace that has loops
are listed (in pages, only their uids kept), and the loops whose object is not
listed are stopped, as a DELETED event would have stopped them.

A loop added after its namespace's listing began is never taken for gone: its
object may have been created after the listing's snapshot. A namespace whose
listing fails keeps its loops until the next resync.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: Lists the uids of the watches in one namespace (raises when it cannot).
UidLister = Callable[[str], Awaitable[set[str]]]


@dataclass(frozen=True, slots=True)
class KnownLoop:
    """What the resync needs of a poll loop."""

    namespace: str
    #: Monotonic clock reading when the loop was made (first sight of the object).
    added_at: float


def orphans(
    known: Mapping[str, KnownLoop], namespace: str, listed: set[str], listing_started: float
) -> list[str]:
    """The uids of `namespace`'s loops whose object the listing does not have, among
    the loops that existed before the listing began."""
    return [
        uid
        for uid, loop in known.items()
        if loop.namespace == namespace and loop.added_at < listing_started and uid not in listed
    ]


async def resync_once(
    known: Callable[[], Mapping[str, KnownLoop]],
    list_uids: UidLister,
    stop: Callable[[Iterable[str]], None],
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """One pass over the namespaces that have loops; returns how many were stopped."""
    stopped = 0
    # One snapshot for the pass: a loop added later is newer than every listing
    # below, so it could never be taken for gone anyway; a loop stopped meanwhile
    # is stopped again harmlessly.
    by_namespace: dict[str, dict[str, KnownLoop]] = {}
    for uid, loop in known().items():
        by_namespace.setdefault(loop.namespace, {})[uid] = loop
    for namespace, loops in sorted(by_namespace.items()):
        started = clock()
        try:
            listed = await list_uids(namespace)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the API server may be down: next time
            logger.warning("resync: could not list the watches in %s: %s", namespace, exc)
            continue
        gone = orphans(loops, namespace, listed, started)
        if gone:
            logger.info(
                "resync: %d watch(es) in %s were deleted without an event reaching the "
                "operator; their polls stop",
                len(gone),
                namespace,
            )
            stop(gone)
            stopped += len(gone)
    return stopped


async def resync_forever(
    interval: float,
    known: Callable[[], Mapping[str, KnownLoop]],
    list_uids: UidLister,
    stop: Callable[[Iterable[str]], None],
) -> None:
    """`resync_once` every `interval` seconds (0 or infinity: never)."""
    if interval <= 0 or math.isinf(interval):
        return
    while True:
        await asyncio.sleep(interval)
        await resync_once(known, list_uids, stop)
