"""The resync (`resync.py`): which loops it takes for orphans, and which it never does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from cce_upgrade_watch.resync import KnownLoop, orphans, resync_forever, resync_once


def test_only_loops_older_than_the_listing_and_absent_from_it_are_orphans() -> None:
    known = {
        "listed": KnownLoop("a", added_at=1.0),
        "deleted": KnownLoop("a", added_at=1.0),
        "newer": KnownLoop("a", added_at=5.0),  # may be newer than the listing's snapshot
        "elsewhere": KnownLoop("b", added_at=1.0),  # another namespace's listing decides
    }
    assert orphans(known, "a", {"listed"}, listing_started=5.0) == ["deleted"]


def test_a_pass_stops_the_orphans_and_spares_a_namespace_it_could_not_list() -> None:
    known = {
        "gone": KnownLoop("a", 0.0),
        "here": KnownLoop("a", 0.0),
        "unlisted": KnownLoop("down", 0.0),
    }
    stopped: list[str] = []

    async def list_uids(namespace: str) -> set[str]:
        if namespace == "down":
            raise ConnectionError("the API server is down")
        return {"here"}

    def stop(uids: Iterable[str]) -> None:
        stopped.extend(uids)
        for uid in uids:
            known.pop(uid)

    count = asyncio.run(resync_once(lambda: known, list_uids, stop, clock=lambda: 1.0))
    assert (count, stopped) == (1, ["gone"])
    assert set(known) == {"here", "unlisted"}


def test_a_loop_added_while_its_namespace_is_listed_is_kept() -> None:
    known: dict[str, KnownLoop] = {"old": KnownLoop("a", 0.0)}
    clock = iter([10.0])

    async def list_uids(namespace: str) -> set[str]:
        # Created after the listing's snapshot: ADDED arrived while it ran.
        known["new"] = KnownLoop("a", 10.5)
        return {"old"}

    stopped: list[str] = []
    asyncio.run(resync_once(lambda: known, list_uids, stopped.extend, clock=lambda: next(clock)))
    assert stopped == []


def test_an_interval_of_zero_never_lists() -> None:
    async def list_uids(namespace: str) -> set[str]:
        raise AssertionError("listed")

    asyncio.run(
        asyncio.wait_for(resync_forever(0, lambda: {"x": KnownLoop("a", 0)}, list_uids, print), 5)
    )
