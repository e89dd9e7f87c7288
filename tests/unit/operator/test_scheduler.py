"""The shared poll scheduler: each watch's timing as its own loop had it, one timer
for all, at most one poll per watch and a bounded number in all.

Most tests drive `start_due` on a fake clock (deterministic, no waiting); the
last ones run the timer task on the real clock with a short grid."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.pollloop import PollLoop
from cce_upgrade_watch.scheduler import Scheduler, on_poll_grid
from tests.support.waiting import async_wait_until
from tests.unit.operator.test_pollloop import FakeCce, FakeSecrets, FakeWriter, body, make_services


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Target:
    """A watch's poll: records the clock at each start, takes `duration` on it,
    then asks for `interval` (and `retry_after`). `hold()` keeps the next polls
    in flight until `release()`."""

    def __init__(self, clock: Clock, *, interval: float = 10.0, delay: float = 0.0) -> None:
        self.clock = clock
        self.interval = interval
        self.delay = delay
        self.duration = 0.0
        self.retry_after = 0.0
        self.starts: list[float] = []
        self.ends = 0
        self.started = asyncio.Event()
        self._gate: asyncio.Event | None = None

    def start(self) -> float:
        return self.delay

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        assert self._gate is not None
        self._gate.set()
        self._gate = None

    async def poll_once(self) -> float:
        self.starts.append(self.clock.now)
        self.started.set()
        if self._gate is not None:
            await self._gate.wait()
        self.clock.now += self.duration
        self.ends += 1
        return self.interval


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def probe() -> bool:
        return condition()

    await async_wait_until(probe, timeout=timeout, interval=0.01)


def one_watch(now: float = 100.0, **target: Any) -> tuple[Clock, Scheduler, Target]:
    """A scheduler on a fake clock at `now`, with one watch "w" added."""
    clock = Clock(now)
    scheduler = Scheduler(clock=clock)
    watch = Target(clock, **target)
    scheduler.add("w", watch)
    return clock, scheduler, watch


async def at(scheduler: Scheduler, clock: Clock, moment: float) -> None:
    """Move the clock to `moment`, start what is due, let those polls end."""
    clock.now = moment
    scheduler.start_due()
    await scheduler.join()


async def test_polls_fall_on_the_grid_and_count_from_their_start() -> None:
    clock, scheduler, target = one_watch(100.3, interval=10.0)
    target.duration = 3.0  # a slow poll: the schedule must not drift by it
    await at(scheduler, clock, 100.3)  # a new watch polls at once, off the grid
    assert target.starts == [100.3]
    assert scheduler.next_due("w") == 111.0  # 100.3 + 10, up to the next tick
    await at(scheduler, clock, 110.9)
    assert target.starts == [100.3]  # never early
    await at(scheduler, clock, 111.0)
    # Started on its tick: counts from the tick (111 + 10), not from the end (114).
    assert scheduler.next_due("w") == 121.0
    await at(scheduler, clock, 121.5)  # the timer came late: still counted from the tick
    assert target.starts == [100.3, 111.0, 121.5]
    assert scheduler.next_due("w") == 131.0


async def test_retry_after_counts_from_the_end_of_the_poll() -> None:
    clock, scheduler, target = one_watch(100.0, interval=10.0)
    target.duration = 5.0
    target.retry_after = 30.0
    await at(scheduler, clock, 100.0)
    assert scheduler.next_due("w") == 135.0  # 105 + 30, not 100 + 10 nor 100 + 30
    target.retry_after = 2.5
    await at(scheduler, clock, 135.0)
    assert scheduler.next_due("w") == 145.0  # the interval from the start is later


async def test_a_wake_up_during_a_poll_polls_again_right_after() -> None:
    clock, scheduler, target = one_watch(100.0, interval=3600.0)
    target.hold()
    scheduler.start_due()
    await target.started.wait()
    scheduler.wake("w")  # a spec change while the poll runs
    scheduler.wake("w")  # twice: still one more poll
    clock.now = 100.4
    target.release()
    await scheduler.join()
    assert scheduler.next_due("w") is None  # due now, not in an hour
    clock.now = 100.6
    scheduler.start_due()
    await scheduler.join()
    assert target.starts == [100.0, 100.6]  # at once, not on the grid
    assert scheduler.next_due("w") == 3701.0  # counted from that start


async def test_a_wake_up_while_sleeping_polls_at_once_and_the_old_tick_is_skipped() -> None:
    clock, scheduler, target = one_watch(100.0, interval=10.0)
    await at(scheduler, clock, 100.0)
    clock.now = 104.2
    scheduler.wake("w")
    await at(scheduler, clock, 104.2)
    assert target.starts == [100.0, 104.2]
    assert scheduler.next_due("w") == 115.0
    await at(scheduler, clock, 110.0)  # the tick scheduled before the wake-up: stale
    assert target.starts == [100.0, 104.2]


async def test_a_watch_removed_during_its_poll_is_not_polled_again() -> None:
    clock, scheduler, target = one_watch(100.0, interval=10.0)
    target.hold()
    scheduler.start_due()
    await target.started.wait()
    assert scheduler.remove("w") is target
    scheduler.wake("w")  # a late event of the deleted object: nothing
    target.release()
    await scheduler.join()
    assert target.ends == 1  # the poll in flight ended (its write finds the object gone)
    assert "w" not in scheduler
    assert scheduler.next_due("w") is None
    for moment in (110.0, 200.0, 10_000.0):
        await at(scheduler, clock, moment)
    assert target.starts == [100.0]
    assert scheduler.remove("w") is None


async def test_a_removed_and_added_again_uid_keeps_one_schedule() -> None:
    clock = Clock(100.0)
    scheduler = Scheduler(clock=clock)
    first, second = Target(clock), Target(clock)
    scheduler.add("w", first)
    await at(scheduler, clock, 100.0)
    scheduler.remove("w")
    scheduler.add("w", second)  # e.g. paused and resumed: kopf lists it again
    await at(scheduler, clock, 100.0)
    await at(scheduler, clock, 110.0)
    assert first.starts == [100.0]
    assert second.starts == [100.0, 110.0]  # the first one's stale entry started nothing


async def test_polls_in_flight_are_bounded_and_taken_in_turns_by_namespace() -> None:
    clock = Clock(100.0)
    scheduler = Scheduler(max_in_flight=2, clock=clock)
    targets: dict[str, Target] = {}
    for uid, tenant in [("a1", "a"), ("a2", "a"), ("a3", "a"), ("a4", "a"), ("b1", "b")]:
        target = Target(clock)
        target.hold()
        targets[uid] = target
        scheduler.add(uid, target, tenant=tenant)

    def running() -> list[str]:
        return [uid for uid, t in targets.items() if t.starts and not t.ends]

    scheduler.start_due()
    await until(lambda: len(running()) == 2)
    # b's only watch does not wait behind a's four.
    assert running() == ["a1", "b1"]
    order = running()
    for _ in range(3):
        targets[running()[0]].release()
        await until(lambda: scheduler.in_flight < 2)
        scheduler.start_due()
        await until(lambda: len(running()) == 2)
        order += [uid for uid in running() if uid not in order]
        assert scheduler.in_flight == 2
    assert order == ["a1", "b1", "a2", "a3", "a4"]
    for target in targets.values():
        if target._gate is not None:
            target.release()
    await scheduler.join()


async def test_a_namespace_holds_at_most_half_the_places_while_another_has_watches() -> None:
    # Hanging polls of one namespace (a dead endpoint) cannot take every place:
    # the other namespace's poll starts when due, as the CCE client's slots rule.
    clock = Clock(100.0)
    scheduler = Scheduler(max_in_flight=4, clock=clock)
    alone = [Target(clock) for _ in range(6)]
    for index, target in enumerate(alone):
        target.hold()
        scheduler.add(f"a{index}", target, tenant="a")
    scheduler.start_due()
    await until(lambda: sum(1 for t in alone if t.starts) == 4)  # alone: every place
    other = Target(clock, delay=5.0)
    scheduler.add("b0", other, tenant="b")
    for target in alone:
        if target._gate is not None:
            target.release()
    await scheduler.join()
    for index, target in enumerate(alone):
        target.hold()
        scheduler.wake(f"a{index}")
    scheduler.start_due()
    await until(lambda: sum(len(t.starts) for t in alone) == 6)
    assert scheduler.in_flight == 2  # half the places, though four a's wait
    clock.now = 105.0
    scheduler.start_due()
    await until(lambda: other.ends == 1)  # b's poll was not held back by a's queue
    for target in alone:
        if target._gate is not None:
            target.release()
    await scheduler.join()


async def test_the_first_polls_are_spread_on_the_grid() -> None:
    clock = Clock(100.0)
    scheduler = Scheduler(clock=clock)
    late = Target(clock, delay=3.4)
    scheduler.add("late", late)
    assert scheduler.next_due("late") == 104.0
    await at(scheduler, clock, 103.9)
    assert late.starts == []
    await at(scheduler, clock, 104.0)
    assert late.starts == [104.0]


def test_a_restarted_loop_spreads_its_first_poll_a_new_one_polls_at_once() -> None:
    services = make_services(FakeCce(), FakeWriter(), FakeSecrets())
    services.config = OperatorConfig(max_initial_delay=10.0)
    fresh = PollLoop(body(), services, lambda event: None)
    assert fresh.start() == 0.0
    known: dict[str, Any] = {**body(), "status": {"conditions": [{"type": "Ready"}]}}
    random.seed(15)
    delays = [PollLoop(known, services, lambda event: None).start() for _ in range(200)]
    assert all(0.0 <= d <= 10.0 for d in delays)
    assert max(delays) - min(delays) > 5.0  # spread, not all at once


async def test_a_suspended_watch_sleeps_until_woken_by_a_spec_change() -> None:
    clock, scheduler, target = one_watch(100.0, interval=math.inf)
    await at(scheduler, clock, 100.0)
    assert scheduler.next_due("w") is None
    await at(scheduler, clock, 1e9)
    assert target.starts == [100.0]
    target.interval = 10.0
    scheduler.wake("w")  # the spec changed: suspend is off
    await at(scheduler, clock, 1e9 + 0.5)
    assert target.starts == [100.0, 1e9 + 0.5]
    assert scheduler.next_due("w") == math.ceil(1e9 + 10.5)


async def test_a_poll_that_raises_is_tried_again_later() -> None:
    clock = Clock(100.0)
    scheduler = Scheduler(clock=clock)

    class Broken(Target):
        async def poll_once(self) -> float:
            await super().poll_once()
            raise RuntimeError("a bug")

    target = Broken(clock)
    scheduler.add("w", target)
    await at(scheduler, clock, 100.0)
    assert scheduler.next_due("w") == 160.0


def test_the_grid_rounds_up_and_keeps_infinity() -> None:
    assert on_poll_grid(3.0) == 3.0
    assert on_poll_grid(3.01) == 4.0
    assert on_poll_grid(math.inf) == math.inf
    assert on_poll_grid(0.26, 0.25) == 0.5


# -- the timer task, on the real clock ------------------------------------------------


async def test_the_timer_runs_every_watch_and_holds_no_task_per_sleeping_watch() -> None:
    scheduler = Scheduler(grid=0.05)
    before = asyncio.all_tasks()
    clock = Clock()
    targets = [Target(clock, interval=0.1) for _ in range(50)]
    for index, target in enumerate(targets):
        scheduler.add(f"w{index}", target)
    scheduler.start()
    try:
        await until(lambda: all(len(t.starts) >= 3 for t in targets), timeout=10)
        for target in targets:
            target.interval = 3600.0
        await until(
            lambda: (
                scheduler.in_flight == 0
                and all(scheduler.next_due(f"w{i}") is not None for i in range(50))
            ),
            timeout=10,
        )
        # Fifty sleeping watches: the timer task, and nothing per watch.
        assert len(asyncio.all_tasks() - before) == 1
    finally:
        await scheduler.stop(grace=1.0)
    assert asyncio.all_tasks() == before


async def test_stop_lets_a_poll_end_then_cancels_one_that_does_not() -> None:
    scheduler = Scheduler(grid=0.05)
    clock = Clock()
    quick, stuck = Target(clock), Target(clock)
    stuck.hold()
    scheduler.add("stuck", stuck)
    scheduler.start()
    await asyncio.wait_for(stuck.started.wait(), 5)
    scheduler.add("quick", quick)
    await until(lambda: quick.ends == 1)
    await scheduler.stop(grace=0.05, abandon_after=5.0)
    assert stuck.ends == 0  # cancelled after the grace
    assert scheduler.in_flight == 0


@pytest.mark.parametrize("wakes", [1, 3])
async def test_the_timer_serves_a_wake_up_at_once(wakes: int) -> None:
    scheduler = Scheduler(grid=0.05)
    clock = Clock()
    target = Target(clock, interval=3600.0)
    scheduler.add("w", target)
    scheduler.start()
    try:
        await until(lambda: target.ends == 1)
        for _ in range(wakes):
            scheduler.wake("w")
        await until(lambda: target.ends == 2)
    finally:
        await scheduler.stop()
    assert len(target.starts) == 2


async def test_settled_once_no_watch_was_added_for_a_while() -> None:
    clock = Clock()
    scheduler = Scheduler(clock=clock)
    assert scheduler.settled(60)  # nothing was ever added
    scheduler.add("a", Target(clock, delay=5.0))
    assert not scheduler.settled(60)
    clock.now += 59
    assert not scheduler.settled(60)
    clock.now += 1
    assert scheduler.settled(60)


async def test_a_due_poll_takes_the_next_free_place_before_woken_ones() -> None:
    # A burst of new watches (woken: polled at once), each waiting on the API
    # server, must not hold back a poll due on its tick behind all of them.
    clock = Clock(100.0)
    scheduler = Scheduler(max_in_flight=2, clock=clock)
    new = [Target(clock) for _ in range(4)]
    for index, target in enumerate(new):
        target.hold()
        scheduler.add(f"new{index}", target, tenant="a")
    due = Target(clock, delay=5.0)
    scheduler.add("due", due, tenant="a")
    scheduler.start_due()
    await until(lambda: scheduler.in_flight == 2)
    clock.now = 105.0
    scheduler.start_due()  # due now, but no place is free
    assert due.starts == []
    new[0].release()
    await until(lambda: scheduler.in_flight == 1)
    scheduler.start_due()
    await until(lambda: due.ends == 1)
    assert [len(t.starts) for t in new] == [1, 1, 0, 0]  # the woken ones wait their turn
    for target in new:
        if target._gate is not None:
            target.release()

    def all_polled() -> bool:
        scheduler.start_due()  # as the timer does when a place frees
        return all(t.ends == 1 for t in new)

    await until(all_polled)
    await scheduler.join()
