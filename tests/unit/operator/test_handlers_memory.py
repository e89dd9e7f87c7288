"""handlers.py's watch events: what they keep per object stays small, and they add,
wake and remove the objects' polls in the shared scheduler."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import kopf

from cce_upgrade_watch.events import Event
from cce_upgrade_watch.handlers import QuietWakeups, follow_watch_events, kopf_pause_toggles
from cce_upgrade_watch.metrics import OperatorMetrics
from cce_upgrade_watch.pollloop import PollLoop
from cce_upgrade_watch.scheduler import Scheduler
from tests.unit.operator.test_pollloop import (
    RUNNING,
    FakeCce,
    FakeSecrets,
    FakeWriter,
    body,
    make_services,
)


class FakeKube:
    def __init__(self) -> None:
        self.events: list[tuple[Any, Event]] = []

    async def create_event(self, involved: Any, event: Event) -> None:
        self.events.append((involved, event))


class Paused:
    def __init__(self) -> None:
        self.on = False

    def is_on(self) -> bool:
        return self.on

    def __bool__(self) -> bool:
        raise NotImplementedError  # as kopf's ToggleSet: no truth value


def make_memo(paused: Paused | None = None) -> tuple[kopf.Memo, FakeCce]:
    cce = FakeCce()
    cce.answers = [RUNNING]
    memo = kopf.Memo()
    memo.services = make_services(cce, FakeWriter(), FakeSecrets())
    memo.kube = FakeKube()
    memo.metrics = OperatorMetrics()
    memo.scheduler = Scheduler()
    memo.loops = {}
    memo.paused = paused
    return memo, cce


async def deliver(memo: kopf.Memo, raw: dict[str, Any], kind: str | None = "MODIFIED") -> None:
    """One watch event, as kopf calls the handler (it passes many more keyword
    arguments; the handler takes them as **_)."""
    handler: Any = follow_watch_events  # kopf's decorator types it as a WatchingFn
    body: Any = raw
    await handler(type=kind, body=kopf.Body(body), uid=raw["metadata"]["uid"], memo=memo)


def event(memo: kopf.Memo, raw: dict[str, Any], kind: str | None = "MODIFIED") -> None:
    asyncio.run(deliver(memo, raw, kind))


def watch(uid: str = "u1", **spec: Any) -> dict[str, Any]:
    raw = body(**spec)
    raw["metadata"]["uid"] = uid
    return raw


def test_a_watch_event_leaves_the_body_without_managed_fields() -> None:
    memo, _ = make_memo()
    raw = watch()
    raw["metadata"]["managedFields"] = [{"manager": "kopf", "fieldsV1": {"f:metadata": {}}}]
    event(memo, raw, None)
    assert "managedFields" not in raw["metadata"]
    loop: PollLoop = memo.loops["u1"]
    assert "managedFields" not in loop._body["metadata"]
    assert loop._body["spec"] == raw["spec"]


def test_the_first_event_adds_later_ones_notice_deleted_removes() -> None:
    memo, _ = make_memo()
    scheduler: Scheduler = memo.scheduler
    event(memo, watch(), None)  # the listing at start-up
    assert "u1" in scheduler
    loop = memo.loops["u1"]
    newer = watch(generation=2)
    event(memo, newer)
    assert memo.loops["u1"] is loop  # the same loop, not a second one
    assert loop._body["metadata"]["generation"] == 2  # the newest body is kept
    event(memo, watch(), "DELETED")
    assert "u1" not in scheduler
    assert memo.loops == {}
    event(memo, watch("u2"), "ADDED")
    gone = copy.deepcopy(watch("u2"))
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    event(memo, gone)  # deletion under way (another finalizer holds it): stop now
    assert "u2" not in scheduler
    assert memo.loops == {}


def test_an_unknown_uid_is_added_on_any_event_but_deleted() -> None:
    memo, _ = make_memo()
    event(memo, watch(), "MODIFIED")  # e.g. the first event after a resume
    assert "u1" in memo.scheduler
    event(memo, watch("u2"), "DELETED")  # never seen, already gone: nothing to start
    assert "u2" not in memo.scheduler


def test_a_paused_replica_starts_nothing_and_stops_what_it_had() -> None:
    paused = Paused()
    memo, _ = make_memo(paused)
    event(memo, watch("u1"), None)
    paused.on = True  # a peer of higher priority appeared
    event(memo, watch("u2"), None)  # an event that sneaked through the pause
    assert "u2" not in memo.scheduler
    event(memo, watch("u1"))
    assert "u1" not in memo.scheduler


async def test_removal_drops_the_credentials_no_live_watch_uses() -> None:
    memo, cce = make_memo()
    scheduler: Scheduler = memo.scheduler
    for uid in ("u1", "u2"):
        await deliver(memo, watch(uid), None)
    scheduler.start_due()
    await scheduler.join()
    assert len(cce.calls) == 2
    assert len(memo.services.credentials) == 1  # both name Secret "creds"
    await deliver(memo, watch("u1"), "DELETED")
    assert len(memo.services.credentials) == 1  # u2 still uses it
    await deliver(memo, watch("u2"), "DELETED")
    assert len(memo.services.credentials) == 0


async def test_kopf_s_pause_flag_is_found_where_kopf_1_45_keeps_it() -> None:
    # Peering: a paused replica must stop polling, and kopf tells only its own
    # tasks. This reads the flag from kopf's real root tasks (no API server is
    # needed to create them; they are cancelled before they call one).
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server="https://127.0.0.1:9")

    tasks = await kopf.spawn_tasks(registry=registry, clusterwide=True, standalone=True)
    try:
        paused = kopf_pause_toggles()
        assert paused is not None
        assert paused.is_on() is False
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_kopf_s_line_per_event_is_dropped_but_not_a_failure() -> None:
    quiet = QuietWakeups()

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)

    assert not quiet.filter(record(logging.INFO, "Handler 'follow_watch_events' succeeded."))
    failed = "Handler 'follow_watch_events' failed with an exception and will ignore it: E"
    assert quiet.filter(record(logging.ERROR, failed))
    assert quiet.filter(record(logging.INFO, "Handler 'other' succeeded."))
