"""Which injected faults hit which request, and for how long."""

from __future__ import annotations

import pytest

from cce_upgrade_watch.simulator.faults import FaultBook, FaultKind


def test_no_faults_no_effects() -> None:
    effects = FaultBook().take("c1")
    assert (effects.latency, effects.single_item, effects.action) == (0.0, False, None)


def test_a_counted_fault_hits_that_many_requests() -> None:
    book = FaultBook()
    fault = book.add(FaultKind.ERROR, status=500, remaining=2)
    assert book.take("c1").action is fault
    assert book.take("c2").action is fault
    assert book.take("c1").action is None
    assert fault.applied == 2
    assert book.all() == []


def test_an_uncounted_fault_stays_until_cleared() -> None:
    book = FaultBook()
    book.add(FaultKind.DROP, cluster_id="c1")
    for _ in range(5):
        assert book.take("c1").action is not None
    assert book.take("c2").action is None
    assert book.clear("c1") == 1
    assert book.take("c1").action is None


def test_the_clusters_own_fault_comes_before_a_global_one() -> None:
    book = FaultBook()
    global_fault = book.add(FaultKind.THROTTLE, retry_after=3)
    own = book.add(FaultKind.MALFORMED, cluster_id="c1", remaining=1)
    assert book.take("c1").action is own
    assert book.take("c1").action is global_fault
    assert book.take("c9").action is global_fault
    assert global_fault.applied == 2  # not consumed while the cluster's own one won


def test_modifiers_stack_with_one_action() -> None:
    book = FaultBook()
    book.add(FaultKind.LATENCY, latency=0.5, remaining=1)
    book.add(FaultKind.LATENCY, latency=0.2, cluster_id="c1")
    book.add(FaultKind.SINGLE_ITEM, cluster_id="c1", remaining=1)
    error = book.add(FaultKind.ERROR, status=503, remaining=1)
    effects = book.take("c1")
    assert (effects.latency, effects.single_item, effects.action) == (0.5, True, error)
    effects = book.take("c1")
    assert (effects.latency, effects.single_item, effects.action) == (0.2, False, None)


def test_remove_and_clear_everything() -> None:
    book = FaultBook()
    first = book.add(FaultKind.ERROR)
    book.add(FaultKind.ERROR, cluster_id="c1")
    assert book.remove(first.id)
    assert not book.remove(first.id)
    assert book.clear() == 1
    assert book.all() == []


def test_a_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FaultBook().add(FaultKind.ERROR, remaining=0)
