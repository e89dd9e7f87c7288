"""`gcpolicy`: what a full collection leaves alive is frozen; frozen cycles are
collected by `collect_frozen`."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from cce_upgrade_watch import gcpolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> Node:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return first


@pytest.fixture
def freezing() -> Iterator[None]:
    gcpolicy.freeze_after_full_collections()
    gcpolicy.freeze_after_full_collections()  # idempotent: one callback
    try:
        yield
    finally:
        gcpolicy.stop_freezing()


def test_a_full_collection_freezes_what_it_leaves_alive(freezing: None) -> None:
    assert gc.callbacks.count(gcpolicy._freeze_after_full) == 1
    alive = cycle()
    gc.collect()
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(alive)


def test_a_cycle_made_after_the_freeze_is_still_collected(freezing: None) -> None:
    gc.collect()
    ref = weakref.ref(cycle())
    gc.collect()
    assert ref() is None


def test_a_frozen_cycle_waits_for_collect_frozen(freezing: None) -> None:
    node = cycle()
    ref = weakref.ref(node)
    gc.collect()  # frozen with `node` alive
    del node
    gc.collect()
    assert ref() is not None  # frozen: no pass walks it
    gcpolicy.collect_frozen()
    assert ref() is None
    assert gc.get_freeze_count() > 0  # the survivors are frozen again


def test_without_the_policy_nothing_is_frozen() -> None:
    gc.collect()
    assert gc.get_freeze_count() == 0


def test_nothing_is_frozen_while_not_settled() -> None:
    settled = False
    gcpolicy.freeze_after_full_collections(lambda: settled)
    try:
        gc.collect()
        assert gc.get_freeze_count() == 0  # a burst of new watches: no freezing
        settled = True
        gc.collect()
        assert gc.get_freeze_count() > 0
    finally:
        gcpolicy.stop_freezing()
