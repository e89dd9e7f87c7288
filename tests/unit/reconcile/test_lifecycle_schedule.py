"""When the lifecycle parts are asked (issue 12's budget): each trigger, the
periodic intervals, spreading after a restart, parts turned off, 404/403
backoff, failures."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from cce_upgrade_watch.lifecycle_state import (
    FAILED_RETRY,
    SLOW_INTERVAL,
    LifecycleAnswers,
    LifecycleSchedule,
    Part,
    PartAnswer,
    PartFailed,
    PartNotOffered,
)
from cce_upgrade_watch.reconcile import WorkflowsFetched, reconcile
from cce_upgrade_watch.spec import DEFAULT_PLAN_INTERVAL, WatchSpec

from ._lifecycle import T0, answers, plan, precheck, versions, window, workflows
from ._support import as_stored, make_spec

ALL = frozenset(Part)
SLOW = frozenset({Part.WINDOW, Part.VERSIONS, Part.BACKUPS})


def answer_all(parts: frozenset[Part]) -> LifecycleAnswers:
    return LifecycleAnswers({part: PartAnswer(None) for part in parts})


class Loop:
    """A poll loop's view: schedule, stored status, the workflows of each poll."""

    def __init__(self, spec: WatchSpec | None = None, seed: str = "uid-1") -> None:
        self.spec = spec or make_spec()
        self.schedule = LifecycleSchedule(seed)
        self.stored: dict[str, Any] | None = None
        self.workflows = workflows()

    def poll(self, minutes: float, answer: Any = None) -> frozenset[Part]:
        """One poll at T0 + minutes: the parts due, answered (PartAnswer(None)
        unless `answer` maps a part to another outcome) and stored."""
        now = T0 + timedelta(minutes=minutes)
        due = self.schedule.due(self.spec, self.workflows, self.stored, now)
        outcomes = {part: (answer or {}).get(part, PartAnswer(None)) for part in due.parts}
        lifecycle = LifecycleAnswers(outcomes)
        result = reconcile(
            self.stored, self.spec, 1, WorkflowsFetched(self.workflows), now, lifecycle=lifecycle
        )
        self.stored = as_stored(result.status)
        self.schedule.record(lifecycle, now)
        return due.parts


# ------------------------------------------------------------- a new object


def test_a_new_watch_asks_every_part_at_its_first_poll() -> None:
    loop = Loop()
    loop.workflows = workflows(precheck_status="Running", precheck_id="pc-7")
    due = loop.schedule.due(loop.spec, loop.workflows, None, T0)
    assert due.parts == ALL
    assert due.precheck_task_id == "pc-7"


def test_no_pre_check_point_means_the_newest_task_of_the_list() -> None:
    due = LifecycleSchedule().due(make_spec(), workflows(), None, T0)
    assert Part.PRECHECK in due.parts
    assert due.precheck_task_id is None


@pytest.mark.parametrize(
    ("plan_interval", "plan_calls", "overhead"), [("1h", 168, 0.125), ("2h", 84, 0.0833)]
)
def test_steady_state_costs_what_the_budget_says(
    plan_interval: str, plan_calls: int, overhead: float
) -> None:
    """A week of polls every 5 minutes with nothing changing: plans every
    `planInterval`, window, versions and backups every 6 hours, the pre-check
    never again (docs/RELIABILITY.md quotes these figures)."""
    loop = Loop(make_spec(lifecycle={"planInterval": plan_interval}))
    asked: Counter[Part] = Counter()
    polls = 7 * 24 * 12
    for poll in range(polls):
        asked.update(loop.poll(poll * 5))
    assert asked[Part.PRECHECK] == 1
    assert asked[Part.PLANS] == plan_calls  # the first poll, then every interval
    for part in SLOW:
        assert asked[part] == 7 * 4
    # Per workflow poll, without the first poll (which reads everything once).
    steady = (sum(asked.values()) - len(Part)) / polls
    print(f"planInterval {plan_interval}: {steady:.4f} lifecycle calls per 5m workflow poll")
    assert steady == pytest.approx(overhead, abs=0.003)  # a week holds whole intervals only


def test_the_default_plan_interval_keeps_the_lifecycle_calls_within_a_tenth() -> None:
    """Issue 12's budget: at the default `pollInterval` (5m) the lifecycle calls add
    at most 10 % to the steady CCE requests. Plans every 1h would add 12.5 %."""
    loop = Loop(make_spec())
    asked: Counter[Part] = Counter()
    polls = 7 * 24 * 12
    for poll in range(polls):
        asked.update(loop.poll(poll * 5))
    assert (sum(asked.values()) - len(Part)) / polls <= 0.10


def test_plan_interval_is_the_spec_s() -> None:
    loop = Loop(make_spec(lifecycle={"planInterval": "15m"}))
    loop.poll(0)
    assert [minute for minute in range(0, 61, 5) if Part.PLANS in loop.poll(minute)] == [
        15,
        30,
        45,
        60,
    ]


# ------------------------------------------------------------- triggers


def test_pre_check_is_asked_when_its_point_changes() -> None:
    loop = Loop()
    loop.workflows = workflows(precheck_status="Running")
    loop.poll(0)
    assert loop.poll(5) == frozenset()
    loop.workflows = workflows(precheck_status="Failed")
    assert loop.poll(10) == {Part.PRECHECK}
    assert loop.poll(15) == frozenset()
    loop.workflows = workflows(precheck_status="Running", precheck_id="pc-2")
    due = loop.schedule.due(loop.spec, loop.workflows, loop.stored, T0 + timedelta(minutes=20))
    assert due.parts == {Part.PRECHECK}
    assert due.precheck_task_id == "pc-2"


def test_a_pre_check_answer_of_another_task_is_not_asked_for_again() -> None:
    """The show call may 404 and the list name another task: that answer stands
    until the point changes, or the poll loop would call at every poll."""
    loop = Loop()
    loop.workflows = workflows(precheck_status="Failed", precheck_id="pc-1")
    other = {Part.PRECHECK: PartAnswer(precheck(task_id="pc-other"))}
    assert Part.PRECHECK in loop.poll(0, other)
    assert (loop.stored or {})["preCheck"]["taskID"] == "pc-other"
    assert [loop.poll(minute, other) for minute in (5, 10, 15)] == [frozenset()] * 3


def test_a_failed_workflow_poll_triggers_nothing() -> None:
    loop = Loop()
    loop.workflows = workflows("Running", precheck_status="Running")
    loop.poll(0)
    failed = loop.schedule.due(loop.spec, None, loop.stored, T0 + timedelta(minutes=5))
    assert failed.parts == frozenset()
    assert loop.poll(10) == frozenset()  # the same workflow again: no change


def test_a_workflow_that_ends_asks_plans_window_and_versions_at_once() -> None:
    loop = Loop()
    loop.workflows = workflows("Running")
    loop.poll(0)
    assert loop.poll(5) == frozenset()
    loop.workflows = workflows("Success")
    assert loop.poll(10) == {Part.PLANS, Part.WINDOW, Part.VERSIONS}
    assert loop.poll(15) == frozenset()


def test_backups_are_asked_when_the_snapshot_ends() -> None:
    loop = Loop()
    loop.workflows = workflows("Running", snapshot_status="Init")
    loop.poll(0)
    loop.workflows = workflows("Running", snapshot_status="Running")
    assert loop.poll(5) == frozenset()  # nothing to read while it runs
    loop.workflows = workflows("Running", snapshot_status="Success")
    assert loop.poll(10) == {Part.BACKUPS}
    assert loop.poll(15) == frozenset()


# ------------------------------------------------------------- restarts


def _settled(spec: WatchSpec | None = None, **overrides: Any) -> dict[str, Any]:
    """A stored status in which every part has answered."""
    spec = spec or make_spec()
    parts: dict[str, Any] = {
        "preCheck": precheck(),
        "plans": plan(),
        "maintenanceWindow": window(),
        "versions": versions(),
        "backups": "2026-03-01T00:00:00Z",
    }
    parts.update(overrides)
    result = reconcile(
        None,
        spec,
        1,
        WorkflowsFetched(workflows(precheck_status="Failed")),
        T0,
        lifecycle=answers(**parts),
    )
    return as_stored(result.status)


def test_after_a_restart_stored_parts_are_not_asked_at_once() -> None:
    stored = _settled()
    due = LifecycleSchedule("uid-1").due(
        make_spec(), workflows(precheck_status="Failed"), stored, T0 + timedelta(days=1)
    )
    assert due.parts == frozenset()


def test_after_a_restart_a_missing_part_is_asked_at_once() -> None:
    stored = _settled(backups=PartFailed("503"))
    due = LifecycleSchedule("uid-1").due(
        make_spec(), workflows(precheck_status="Failed"), stored, T0 + timedelta(days=1)
    )
    assert due.parts == {Part.BACKUPS}


def test_after_a_restart_a_changed_pre_check_is_asked() -> None:
    stored = _settled()
    # Stored: the pre-check pc-1 while its point was Failed; now the workflow names another.
    due = LifecycleSchedule("uid-1").due(
        make_spec(),
        workflows(precheck_status="Running", precheck_id="pc-2"),
        stored,
        T0 + timedelta(days=1),
    )
    assert due.parts == {Part.PRECHECK}
    assert due.precheck_task_id == "pc-2"


def test_after_a_restart_the_first_calls_are_spread_over_each_interval() -> None:
    """10,000 watches restarted at once: their first periodic calls spread over
    the interval, the same way for the same object every time."""
    stored = _settled()
    spec = make_spec()
    restart = T0 + timedelta(days=1)
    first_plans: list[float] = []
    first_versions: list[float] = []
    for n in range(2000):
        schedule = LifecycleSchedule(f"uid-{n}")
        schedule.due(spec, workflows(precheck_status="Failed"), stored, restart)
        due = schedule._due_at
        first_plans.append((due[Part.PLANS] - restart) / DEFAULT_PLAN_INTERVAL)
        first_versions.append((due[Part.VERSIONS] - restart) / SLOW_INTERVAL)
    for fractions in (first_plans, first_versions):
        assert all(0 <= f <= 1 for f in fractions)
        tenths = Counter(min(int(f * 10), 9) for f in fractions)
        assert min(tenths.values()) > 2000 / 10 * 0.7, tenths  # none much emptier
        assert max(tenths.values()) < 2000 / 10 * 1.3, tenths  # none much fuller
    again = LifecycleSchedule("uid-0")
    again.due(spec, workflows(precheck_status="Failed"), stored, restart)
    assert (again._due_at[Part.PLANS] - restart) / DEFAULT_PLAN_INTERVAL == first_plans[0]


def test_a_restart_asks_a_part_at_its_offset_then_at_its_interval() -> None:
    loop = Loop()
    loop.workflows = workflows(precheck_status="Failed")
    loop.stored = _settled()
    asked = [minute for minute in range(0, 245, 5) if Part.PLANS in loop.poll(minute)]
    assert len(asked) == 2
    assert asked[1] - asked[0] == 120  # the default planInterval


# ------------------------------------------------------------- turned off, 404/403, failures


def test_parts_turned_off_are_never_asked_and_come_back_at_once() -> None:
    loop = Loop(make_spec(lifecycle={"preCheck": False, "plans": False, "backups": False}))
    asked: set[Part] = set()
    for minute in range(0, 13 * 60, 5):
        asked |= loop.poll(minute)
    assert asked == {Part.VERSIONS}
    loop.spec = make_spec()
    assert loop.poll(13 * 60) == {Part.PRECHECK, Part.PLANS, Part.WINDOW, Part.BACKUPS}


def test_a_part_not_offered_is_asked_again_only_after_six_hours() -> None:
    loop = Loop()
    loop.workflows = workflows(precheck_status="Running")
    denied = {Part.PRECHECK: PartNotOffered(403, "no"), Part.PLANS: PartNotOffered(404, "no")}
    loop.poll(0, denied)
    loop.workflows = workflows(precheck_status="Failed")  # a trigger: ignored while not offered
    asked = {minute: loop.poll(minute, denied) for minute in range(5, 6 * 60 + 5, 5)}
    assert [m for m, parts in asked.items() if Part.PRECHECK in parts] == [360]
    assert [m for m, parts in asked.items() if Part.PLANS in parts] == [360]


def test_after_a_restart_a_part_not_offered_waits_for_its_slow_offset() -> None:
    stored = _settled(plans=PartNotOffered(404, "no"))
    schedule = LifecycleSchedule("uid-1")
    restart = T0 + timedelta(days=1)
    assert schedule.due(
        make_spec(), workflows(precheck_status="Failed"), stored, restart
    ).parts == (frozenset())
    due_at = schedule.next_due()
    assert due_at is not None
    assert restart <= due_at <= restart + SLOW_INTERVAL


def test_a_failed_call_is_retried_after_a_while() -> None:
    loop = Loop()
    loop.poll(0, {part: PartFailed("503") for part in Part})
    assert loop.poll(5) == frozenset()
    retried = loop.poll(FAILED_RETRY / timedelta(minutes=1))
    assert retried == ALL


def test_a_part_left_out_of_the_answers_stays_due() -> None:
    loop = Loop()
    now = T0
    due = loop.schedule.due(loop.spec, loop.workflows, None, now)
    loop.schedule.record(answer_all(due.parts - {Part.VERSIONS}), now)
    assert loop.schedule.due(loop.spec, loop.workflows, None, now).parts >= {Part.VERSIONS}


def test_another_cluster_starts_the_schedule_over() -> None:
    loop = Loop()
    loop.poll(0)
    assert loop.poll(5) == frozenset()
    loop.spec = make_spec(clusterId="00000000-0000-0000-0000-000000000001")
    assert loop.poll(10) == ALL
