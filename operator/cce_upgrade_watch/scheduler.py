"""One shared scheduler for every watch's polls: a heap of due times, one timer task.

A task per watch that sleeps between its polls costs memory (kopf's daemon state,
~15 KiB per object) and a wake-up of the event loop per object and poll
(docs/PERFORMANCE.md). Here, sleeping watches cost one heap entry each; one timer
task sleeps until the earliest due tick and starts the polls due on it, each as a
short-lived task that ends with its poll. Knows nothing of kopf: `handlers.py`
adds, wakes and removes watches as the watch events say.

Timing, as each watch's own loop had it:
- polls fall due on whole ticks of the poll grid (`on_poll_grid`), so the polls
  due about the same moment run in one wake-up of the event loop;
- the next poll counts from the poll's start (from its tick, when it started on
  its tick), so the schedule does not drift by the time the poll took; a
  Retry-After counts from the end of the poll: the cloud is never asked sooner;
- `wake(uid)` (a spec change, a poll-now) polls at once; during a poll it makes
  the watch poll again right after; a poll that says "never" (infinity: the
  watch is suspended) waits for such a wake-up;
- `add` spreads the first polls over the target's initial delay (after a
  restart); a delay of 0 polls at once.

At most one poll per watch runs at a time, and at most `max_in_flight` in all.
Polls due on a tick take a free place before woken ones (a new watch, a wake-up):
a burst of thousands of new objects, whose first polls wait on the API server
for their status writes, would otherwise hold back every due poll behind it by
seconds (the poll-interval drift, docs/PERFORMANCE.md change 22). Within each
kind, due polls waiting for a free place start in turns by tenant (namespace), and
while more than one tenant has watches none holds more than half the places, so
a namespace with many due (or hanging) polls cannot hold back another's: the CCE
client then shares its request slots between the polls in flight by the same
rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)

#: Polls fall due on whole multiples of this (monotonic clock), see `on_poll_grid`.
POLL_GRID_SECONDS = 1.0
#: How soon a watch whose poll raised (a bug: polls report failures as status) is
#: polled again.
FAILED_POLL_RETRY_SECONDS = 60.0


class Pollable(Protocol):
    """What the scheduler runs: `pollloop.PollLoop`."""

    @property
    def retry_after(self) -> float:
        """Seconds the last poll's answer asked to wait, counted from its end."""
        ...

    def start(self) -> float:
        """Called once when added; the seconds to wait before the first poll."""
        ...

    async def poll_once(self) -> float:
        """One poll; the seconds from its start to the next one (inf: none until woken)."""
        ...


@dataclass(eq=False, slots=True)
class _Watch:
    uid: str
    target: Pollable
    tenant: str
    seq: int | None = None  # of its live heap entry; None: not in the heap
    due: float = math.inf  # of that entry
    ready: bool = False  # due, waiting for a free place
    tick: float | None = None  # the tick it fell due on (None: woken, start counts from now)
    polling: bool = False
    again: bool = False  # woken during its poll: poll again right after
    removed: bool = False


@dataclass(eq=False)
class Scheduler:
    max_in_flight: int = 128
    clock: Callable[[], float] = time.monotonic
    grid: float = POLL_GRID_SECONDS
    _watches: dict[str, _Watch] = field(default_factory=dict)
    # (due, seq, uid): an entry whose seq is not its watch's `seq` is stale, and
    # skipped when it comes up (a wake-up or a removal does not search the heap).
    _heap: list[tuple[float, int, str]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    # Watches waiting for a place, by tenant, in turn: those due on a tick, and
    # those woken (new, or woken up), which start only when no due one waits.
    _ready: dict[str, deque[_Watch]] = field(default_factory=dict)
    _ready_woken: dict[str, deque[_Watch]] = field(default_factory=dict)
    _tenant_watches: Counter[str] = field(default_factory=Counter)
    _tenant_polls: Counter[str] = field(default_factory=Counter)  # in flight
    _polls: set[asyncio.Task[None]] = field(default_factory=set)
    _poke: asyncio.Event = field(default_factory=asyncio.Event)
    _timer_at: float = math.inf  # when the timer task wakes next
    _timer: asyncio.Task[None] | None = None
    _last_added: float = -math.inf  # `clock()` when a watch was last added

    def __len__(self) -> int:
        return len(self._watches)

    def __contains__(self, uid: object) -> bool:
        return uid in self._watches

    @property
    def in_flight(self) -> int:
        return len(self._polls)

    def settled(self, seconds: float) -> bool:
        """No watch was added in the last `seconds` (a start-up or a burst of new
        objects is over)."""
        return self.clock() - self._last_added >= seconds

    def next_due(self, uid: str) -> float | None:
        """When the watch's next poll falls due; None: none is scheduled (unknown,
        due now, polling, or waiting for a wake-up)."""
        watch = self._watches.get(uid)
        return watch.due if watch is not None and watch.seq is not None else None

    async def join(self) -> None:
        """Wait until no poll is in flight."""
        while self._polls:
            await asyncio.wait(set(self._polls))

    # ------------------------------------------------------------ the watches

    def add(self, uid: str, target: Pollable, tenant: str = "") -> None:
        """Schedule a new watch's first poll after `target.start()`'s delay (0: at once,
        else on the grid tick at or after it)."""
        if uid in self._watches:
            return
        watch = _Watch(uid, target, tenant)
        self._watches[uid] = watch
        self._last_added = self.clock()
        self._tenant_watches[tenant] += 1
        delay = target.start()
        if delay <= 0:
            self._make_ready(watch, None)
            self._poke.set()
        else:
            self._push(watch, self.on_grid(self.clock() + delay))

    def wake(self, uid: str) -> None:
        """Poll the watch at once; during its poll, again right after it."""
        watch = self._watches.get(uid)
        if watch is None:
            return
        if watch.polling:
            watch.again = True
        elif watch.ready:
            watch.tick = None
        else:
            watch.seq = None  # its heap entry, if any, is stale now
            self._make_ready(watch, None)
            self._poke.set()

    def remove(self, uid: str) -> Pollable | None:
        """Forget the watch: no poll starts for it any more, and a poll in flight
        is not followed by another. Returns its target (None: unknown)."""
        watch = self._watches.pop(uid, None)
        if watch is None:
            return None
        watch.removed = True
        watch.seq = None
        self._tenant_watches[watch.tenant] -= 1
        if not self._tenant_watches[watch.tenant]:
            del self._tenant_watches[watch.tenant]
        return watch.target

    def _push(self, watch: _Watch, due: float) -> None:
        seq = next(self._seq)
        watch.seq = seq
        watch.due = due
        heapq.heappush(self._heap, (due, seq, watch.uid))
        if due < self._timer_at:
            self._poke.set()

    def _make_ready(self, watch: _Watch, tick: float | None) -> None:
        watch.ready = True
        watch.tick = tick
        ready = self._ready if tick is not None else self._ready_woken
        queue = ready.get(watch.tenant)
        if queue is None:
            ready[watch.tenant] = deque((watch,))
        else:
            queue.append(watch)

    # ------------------------------------------------------------ the timer

    def on_grid(self, moment: float) -> float:
        return on_poll_grid(moment, self.grid)

    def start_due(self) -> float:
        """Start the polls due by now, as far as places are free; returns when the
        next one falls due (inf: none is scheduled)."""
        now = self.clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, seq, uid = heapq.heappop(heap)
            watch = self._watches.get(uid)
            if watch is not None and watch.seq == seq:
                watch.seq = None
                self._make_ready(watch, due)
        share = self.max_in_flight
        if len(self._tenant_watches) > 1:
            share = max(1, share // 2)
        self._start_in_turns(self._ready, share)
        # What places are left (due polls still waiting are over their tenant's share).
        self._start_in_turns(self._ready_woken, share)
        return heap[0][0] if heap else math.inf

    def _start_in_turns(self, ready: dict[str, deque[_Watch]], share: int) -> None:
        """Start watches of `ready` while places are free, a tenant at a time, none
        beyond its `share` of the places."""
        passed = 0  # tenants in a row that had their share already
        while ready and len(self._polls) < self.max_in_flight and passed < len(ready):
            tenant = next(iter(ready))
            queue = ready.pop(tenant)
            if self._tenant_polls[tenant] >= share:
                ready[tenant] = queue  # waits for one of its own polls to end
                passed += 1
                continue
            passed = 0
            watch = queue.popleft()
            if queue:
                ready[tenant] = queue  # to the end of the line: the next tenant's turn
            if watch.ready and not watch.removed:
                self._start(watch)

    def _start(self, watch: _Watch) -> None:
        watch.ready = False
        watch.polling = True
        watch.again = False  # a wake-up before the start is served by this poll
        started = watch.tick if watch.tick is not None else self.clock()
        self._tenant_polls[watch.tenant] += 1
        task = asyncio.create_task(self._poll(watch, started))
        self._polls.add(task)
        task.add_done_callback(self._poll_done)

    def _poll_done(self, task: asyncio.Task[None]) -> None:
        self._polls.discard(task)
        if self._ready or self._ready_woken:
            self._poke.set()  # a place is free for a due poll

    async def _poll(self, watch: _Watch, started: float) -> None:
        try:
            interval = await watch.target.poll_once()
        except Exception:
            logger.exception("a poll of watch %s failed unexpectedly", watch.uid)
            interval = FAILED_POLL_RETRY_SECONDS
        finally:
            watch.polling = False
            self._tenant_polls[watch.tenant] -= 1
        if watch.removed:
            return
        if watch.again:
            self._make_ready(watch, None)
            self._poke.set()
            return
        # From the poll's start; a Retry-After from its end; then up to the grid.
        due = max(started + interval, self.clock() + watch.target.retry_after)
        if not math.isinf(due):
            self._push(watch, self.on_grid(due))

    async def run(self) -> None:
        """The timer: forever, start what is due, then sleep until the next due
        tick or until poked (a new watch, a wake-up, an earlier due, a free place)."""
        while True:
            self._poke.clear()
            self._timer_at = self.start_due()
            wait = None if math.isinf(self._timer_at) else max(0.0, self._timer_at - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._poke.wait()

    def start(self) -> None:
        if self._timer is None:
            self._timer = asyncio.create_task(self.run(), name="poll scheduler")

    async def stop(self, grace: float = 5.0, abandon_after: float = 10.0) -> None:
        """Stop the timer; let polls in flight end for `grace` seconds, then cancel
        them and wait up to `abandon_after` more."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        for watch in self._watches.values():
            watch.removed = True  # nothing in flight is scheduled again
        if self._polls:
            _, pending = await asyncio.wait(set(self._polls), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=abandon_after)


def on_poll_grid(moment: float, grid: float = POLL_GRID_SECONDS) -> float:
    """`moment` rounded up to the poll grid (infinity stays infinity).

    Waking the event loop for one poll costs CPython more than the poll's own
    work when caches are cold: a thousand watches polled each at its own moment
    cost ~2 ms of CPU per poll, the same polls run a few at a time on a 1 s grid
    ~0.8 ms (docs/PERFORMANCE.md). A poll may come up to a tick late, never early.
    """
    if math.isinf(moment):
        return moment
    return math.ceil(moment / grid) * grid
