"""The poll loop's lifecycle calls: only the due ones, with the workflow list's
credentials and tenant, never failing a poll, and never skipped past a new
answer or a time-driven transition (issue #12)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cce_upgrade_watch import lifecycle_fetch, pollloop
from cce_upgrade_watch.cce.errors import ApiUnavailable, ClusterNotFound, Forbidden
from cce_upgrade_watch.cce.lifecycle import (
    LIST_PLANS,
    LIST_PRECHECKS,
    LIST_SNAPSHOTS,
    SHOW_PRECHECK,
    SHOW_UPGRADE_INFO,
    SHOW_WINDOW,
)
from cce_upgrade_watch.cce.models import Workflows, parse_workflow_list
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.credentials import CredentialsCache
from cce_upgrade_watch.lifecycle_parts import (
    LifecycleAnswers,
    Part,
    PartAnswer,
    PartFailed,
    PartNotOffered,
)
from cce_upgrade_watch.lifecycle_state import LifecycleSchedule
from cce_upgrade_watch.pollloop import PollLoop, Services
from cce_upgrade_watch.reconcile import reconcile
from cce_upgrade_watch.simulator.lifecycle import FAILED_FINDINGS
from cce_upgrade_watch.spec import DEFAULT_PLAN_INTERVAL
from tests.unit.operator.test_pollloop import (
    RUNNING,
    FakeCce,
    FakeEvents,
    FakeSecrets,
    FakeWriter,
    body,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EVERY_PART = [LIST_PRECHECKS, LIST_PLANS, SHOW_WINDOW, SHOW_UPGRADE_INFO, LIST_SNAPSHOTS]


def with_precheck(status: str) -> dict[str, Any]:
    """RUNNING, with a PreCheck point of task `pc-1` in `status` and a Snapshot point."""
    points = [
        {"taskType": "PreCheck", "taskID": "pc-1", "status": status},
        {"taskType": "Snapshot", "taskID": "snap-1", "status": "Init"},
    ]
    workflow = RUNNING["items"][0]
    return {"items": [{**workflow, "status": {"phase": "Running", "pointStatuses": points}}]}


class Clock:
    """The loop's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self, *, answers: Any = RUNNING, **spec: Any) -> None:
        self.cce, self.writer, self.secrets = FakeCce(), FakeWriter(), FakeSecrets()
        self.cce.answers = [answers]
        self.events = FakeEvents(self.writer)
        self.clock = Clock()
        services = Services(
            config=OperatorConfig(),
            cce=self.cce,  # type: ignore[arg-type]
            status_writer=self.writer,
            credentials=CredentialsCache(self.secrets.read),
        )
        self.loop = PollLoop(body(**spec), services, self.events.post, wall_clock=self.clock)

    def asked(self) -> list[str]:
        """The lifecycle operations called so far, and forget them."""
        operations = [call[0] for call in self.cce.lifecycle_calls]
        self.cce.lifecycle_calls.clear()
        return operations


@pytest.fixture
def reconciled(monkeypatch: pytest.MonkeyPatch) -> list[LifecycleAnswers | None]:
    """What each call of the core got as `lifecycle` (the core itself still runs)."""
    seen: list[LifecycleAnswers | None] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("lifecycle"))
        return reconcile(*args, **kwargs)

    monkeypatch.setattr(pollloop, "reconcile", spy)
    return seen


async def test_the_first_poll_asks_every_part_then_only_what_is_due(
    reconciled: list[LifecycleAnswers | None],
) -> None:
    world = World(pollInterval="1h", activePollInterval="1h")
    await world.loop.poll_once()
    # No PreCheck taskID yet: the newest of the task list.
    assert world.asked() == EVERY_PART
    answers = reconciled[-1]
    assert answers is not None
    assert set(answers.parts) == set(Part)
    assert all(isinstance(o, PartAnswer) for o in answers.parts.values())
    for _ in range(3):
        await world.loop.poll_once()
    assert world.asked() == []  # nothing new: no lifecycle call, the core is skipped
    assert len(reconciled) == 1


async def test_lifecycle_calls_use_the_workflow_lists_credentials_and_tenant() -> None:
    world = World()
    await world.loop.poll_once()
    (workflow_auth,) = world.cce.calls
    assert {(tenant, auth) for _, _, tenant, auth in world.cce.lifecycle_calls} == {
        ("ns", workflow_auth)
    }
    paths = [path for _, path, _, _ in world.cce.lifecycle_calls]
    assert all(path.startswith("/autopilot/v3") for path in paths)


async def test_a_precheck_point_with_a_task_id_is_shown_by_that_id() -> None:
    world = World(answers=with_precheck("Running"))
    await world.loop.poll_once()
    assert world.asked()[0] == SHOW_PRECHECK
    assert world.cce.lifecycle_calls == []
    # The point moves on (Running -> Success): its task is read again, alone.
    world.cce.answers = [with_precheck("Success")]
    await world.loop.poll_once()
    calls = list(world.cce.lifecycle_calls)
    assert [(operation, path.rsplit("/", 1)[-1]) for operation, path, _, _ in calls] == [
        (SHOW_PRECHECK, "pc-1")
    ]


async def test_404_and_403_are_not_offered_and_other_failures_failed_never_a_failed_poll(
    reconciled: list[LifecycleAnswers | None], caplog: pytest.LogCaptureFixture
) -> None:
    world = World()
    world.cce.lifecycle[LIST_PLANS] = Forbidden(
        "no permission", status_code=403, error_code="CCE.03", request_id="req-9"
    )
    world.cce.lifecycle[SHOW_WINDOW] = ClusterNotFound(
        "not published", status_code=404, error_code="APIGW.0101"
    )
    world.cce.lifecycle[SHOW_UPGRADE_INFO] = ApiUnavailable("backend down", status_code=503)
    with caplog.at_level(logging.INFO, logger="cce_upgrade_watch.lifecycle_fetch"):
        await world.loop.poll_once()
    answers = reconciled[-1]
    assert answers is not None
    plans = answers.parts[Part.PLANS]
    assert isinstance(plans, PartNotOffered)
    assert plans.code == 403
    assert "may not read it" in plans.message
    assert "req-9" in plans.message
    window = answers.parts[Part.WINDOW]
    assert isinstance(window, PartNotOffered)
    assert window.code == 404
    assert isinstance(answers.parts[Part.VERSIONS], PartFailed)
    assert isinstance(answers.parts[Part.BACKUPS], PartAnswer)
    synced = next(c for c in world.writer.status["conditions"] if c["type"] == "Synced")
    assert (synced["status"], synced["reason"]) == ("True", "PollSucceeded")
    lines = [r.getMessage() for r in caplog.records]
    assert sum("plans is not available" in line for line in lines) == 1
    assert sum("maintenanceWindow is not available" in line for line in lines) == 1
    assert sum("versions failed" in line for line in lines) == 1
    assert not any(world.secrets.secret_key in line or "AK1" in line for line in lines)


async def test_no_lifecycle_call_when_the_workflow_list_fails() -> None:
    world = World(answers=ApiUnavailable("down", status_code=503))
    await world.loop.poll_once()
    assert world.asked() == []


async def test_answers_whose_status_write_failed_are_asked_again() -> None:
    world = World()
    world.writer.fail = True
    await world.loop.poll_once()
    assert world.asked() == EVERY_PART
    world.writer.fail = False
    await world.loop.poll_once()
    assert world.asked() == EVERY_PART  # not recorded as asked: due again
    await world.loop.poll_once()
    assert world.asked() == []


async def test_poll_now_asks_every_part_again() -> None:
    world = World()
    await world.loop.poll_once()
    world.asked()
    world.loop._force_poll()  # what a new poll-now annotation does (see notice)
    await world.loop.poll_once()
    assert world.asked() == EVERY_PART


async def test_periodic_parts_are_asked_at_their_interval_even_if_polls_are_rarer() -> None:
    # Idle (no workflow): polls every 24 h, the plans at their default interval.
    world = World(answers={"items": []}, pollInterval="24h")
    interval = await world.loop.poll_once()
    world.asked()
    assert interval == pytest.approx(DEFAULT_PLAN_INTERVAL.total_seconds())  # capped
    world.clock.now += timedelta(seconds=interval)
    await world.loop.poll_once()
    assert world.asked() == [LIST_PLANS]


async def test_the_sleep_ends_at_a_time_driven_transition_and_the_core_then_runs(
    monkeypatch: pytest.MonkeyPatch, reconciled: list[LifecycleAnswers | None]
) -> None:
    moment = T0 + timedelta(seconds=42)

    def transitions(status: Mapping[str, Any] | None, spec: Any) -> Iterator[datetime]:
        yield moment + timedelta(minutes=30)
        yield T0 - timedelta(days=1)  # one the core leaves as it is: never hides a later one
        yield moment

    monkeypatch.setattr(pollloop, "time_transitions", transitions)
    world = World(pollInterval="5m", activePollInterval="5m")
    interval = await world.loop.poll_once()
    assert interval == pytest.approx(42)  # not 5 minutes: UpgradeSoon must not wait
    assert len(reconciled) == 1
    world.clock.now = T0 + timedelta(seconds=20)
    assert await world.loop.poll_once() == pytest.approx(22)  # counted from this poll
    assert len(reconciled) == 1  # unchanged answer, moment ahead: the core is skipped
    world.clock.now = moment
    await world.loop.poll_once()
    assert len(reconciled) == 2  # the moment has passed: the core runs, no call needed
    assert reconciled[-1] is None
    assert world.asked() == EVERY_PART  # only the first poll's
    # The moment is behind now: no busy loop at it; the next one is 30 minutes on.
    assert await world.loop.poll_once() == pytest.approx(300)
    assert len(reconciled) == 2
    world.clock.now = moment + timedelta(minutes=30)
    await world.loop.poll_once()
    assert len(reconciled) == 3
    assert world.asked() == []  # the plans are due only hours after the first poll


async def test_an_unexpected_error_reading_one_part_fails_that_part_only(
    monkeypatch: pytest.MonkeyPatch, reconciled: list[LifecycleAnswers | None]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(lifecycle_fetch, "versions_section", broken)
    world = World()
    await world.loop.poll_once()
    answers = reconciled[-1]
    assert answers is not None
    assert isinstance(answers.parts[Part.VERSIONS], PartFailed)
    assert isinstance(answers.parts[Part.BACKUPS], PartAnswer)  # asked after it
    assert world.writer.status["workflowID"] == "wf-1"


# A failed pre-check task with one Fatal finding (the simulator's first).
FAILED_PRECHECK = {
    "items": [
        {
            "metadata": {"uid": "pc-1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {
                "phase": "Failed",
                "clusterCheckStatus": {"phase": "Failed", "itemsStatus": [FAILED_FINDINGS[0]]},
            },
        }
    ]
}


async def test_lifecycle_events_come_before_their_status_and_once_after_a_failed_write() -> None:
    world = World()
    world.cce.lifecycle[LIST_PRECHECKS] = FAILED_PRECHECK
    world.writer.fail = True
    await world.loop.poll_once()
    assert "event:PreCheckFailed" in world.writer.log
    assert world.writer.status == {}
    world.writer.fail = False
    await world.loop.poll_once()  # asked again (not recorded), derived again: same name
    assert world.writer.log[-1] == "status"
    assert [str(e.reason) for e in world.events.created].count("PreCheckFailed") == 1
    assert world.writer.status["preCheck"]["taskID"] == "pc-1"
    await world.loop.poll_once()
    assert [str(e.reason) for e in world.events.created].count("PreCheckFailed") == 1


async def test_an_unchanged_answer_skips_the_schedule_until_a_part_falls_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As the real client: the same answer comes back as the same workflow objects.
    world = World(answers={"items": []}, pollInterval="1h", activePollInterval="1h")
    same = parse_workflow_list(RUNNING)

    async def unchanged(project_id: str, cluster_id: str, **kw: Any) -> Workflows:
        world.cce.calls.append(kw["auth"])
        return Workflows(same.items, same.dropped)

    monkeypatch.setattr(world.cce, "list_upgrade_workflows", unchanged)
    checks: list[datetime] = []
    real_due = LifecycleSchedule.due

    def counted(self: LifecycleSchedule, *args: Any) -> Any:
        checks.append(args[-1])
        return real_due(self, *args)

    monkeypatch.setattr(LifecycleSchedule, "due", counted)
    await world.loop.poll_once()
    assert world.asked() == EVERY_PART
    for _ in range(4):
        world.clock.now += timedelta(minutes=1)
        await world.loop.poll_once()
    # The second poll finds nothing due; the next three do not ask again.
    assert len(checks) == 2
    assert world.asked() == []
    # Once the plans fall due by time, the schedule is asked, and so are they.
    world.clock.now = T0 + DEFAULT_PLAN_INTERVAL
    await world.loop.poll_once()
    assert len(checks) == 3
    assert world.asked() == [LIST_PLANS]
    # A new answer (other objects) is always checked: it may trigger a part.
    same = parse_workflow_list(with_precheck("Success"))
    world.clock.now += timedelta(minutes=1)
    await world.loop.poll_once()
    assert len(checks) == 4
    assert world.asked() == [SHOW_PRECHECK]
