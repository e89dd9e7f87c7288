"""The pure timeline: statuses and phases at any instant, events, forcing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cce_upgrade_watch.simulator.scenarios import builtin_timelines
from cce_upgrade_watch.simulator.timeline import (
    LineSpec,
    Plan,
    StepSpec,
    TimelineSpec,
    WorkflowSnapshot,
    cancel,
    default_lines,
    force_phase,
    force_task,
    plan_timeline,
    snapshot,
)

T0 = 1_700_000_000.0


def ids() -> Iterator[str]:
    return (f"task-{n}" for n in itertools.count(1))


def plan(name: str, time_scale: float = 1.0) -> Plan:
    return plan_timeline(builtin_timelines()[name], T0, time_scale, ids())


def statuses(snap: WorkflowSnapshot) -> dict[str, str]:
    return {point.task_type: point.status for point in snap.points}


def at(p: Plan, seconds: float) -> WorkflowSnapshot:
    return snapshot(p, T0 + seconds)


# The built-in success timeline: PreCheck wait 5 queue 2 run 20, Snapshot queue 2
# run 30, Cluster queue 5 run 120, PostCheck queue 2 run 20.
@pytest.mark.parametrize(
    ("seconds", "phase", "expected"),
    [
        (0, "Init", {"PreCheck": "Init", "Snapshot": "Init"}),
        (4.9, "Init", {"PreCheck": "Init"}),
        (5, "Running", {"PreCheck": "Queuing"}),
        (7, "Running", {"PreCheck": "Running"}),
        (27, "Running", {"PreCheck": "Success", "Snapshot": "Queuing"}),
        (59, "Running", {"Snapshot": "Success", "Cluster": "Queuing"}),
        (64, "Running", {"Cluster": "Running", "PostCheck": "Init"}),
        (184, "Running", {"Cluster": "Success", "PostCheck": "Queuing"}),
        (205.9, "Running", {"PostCheck": "Running"}),
        (206, "Success", {"PreCheck": "Success", "PostCheck": "Success"}),
        (10_000, "Success", {"Cluster": "Success"}),
    ],
)
def test_success_timeline_moves_task_by_task(
    seconds: float, phase: str, expected: dict[str, str]
) -> None:
    snap = at(plan("success"), seconds)
    assert snap.phase == phase
    assert statuses(snap).items() >= expected.items()


def test_points_carry_ids_and_times_only_once_started() -> None:
    snap = at(plan("success"), 64)
    points = {point.task_type: point for point in snap.points}
    assert points["PreCheck"].started_at == T0 + 7
    assert points["PreCheck"].ended_at == T0 + 27
    assert points["PreCheck"].expires_at == T0 + 27 + 86400
    assert points["Snapshot"].expires_at is None
    assert points["Cluster"].task_id is not None
    assert points["Cluster"].started_at == T0 + 64
    assert points["Cluster"].ended_at is None
    assert points["PostCheck"].task_id is None
    assert points["PostCheck"].started_at is None
    assert snap.updated_at == T0 + 64


def test_time_scale_divides_every_duration() -> None:
    fast = plan("success", time_scale=10)
    assert at(fast, 20.5).phase == "Running"
    assert at(fast, 20.61).phase == "Success"  # 206 scenario seconds
    assert at(fast, 20.61).updated_at == pytest.approx(T0 + 20.6)


def test_failed_precheck_leaves_the_workflow_pending_and_the_rest_init() -> None:
    p = plan("precheck-fails")
    assert at(p, 26).phase == "Running"
    snap = at(p, 27)
    assert snap.phase == "Pending"
    assert statuses(snap) == {
        "PreCheck": "Failed",
        "Snapshot": "Init",
        "Cluster": "Init",
        "PostCheck": "Init",
    }
    assert snap.settled
    assert at(p, 100_000) == snap


def test_rollback_appears_only_after_the_failure_and_runs() -> None:
    p = plan("rollback")
    before = at(p, 100)
    assert "Rollback" not in statuses(before)
    assert all(line.end != "Rollback" for line in before.lines)

    failed = at(p, 124)
    assert failed.phase == "Pending"
    assert statuses(failed)["Cluster"] == "Failed"
    assert "Rollback" not in statuses(failed)  # waits 10 s before queuing

    rolling = at(p, 134)
    assert rolling.phase == "Running"
    assert statuses(rolling)["Rollback"] == "Queuing"
    assert LineSpec("PostCheck", "Rollback", critical=False) not in rolling.lines
    assert LineSpec("Cluster", "Rollback", critical=False) in rolling.lines

    done = at(p, 196)
    assert statuses(done)["Rollback"] == "Success"
    assert statuses(done)["PostCheck"] == "Init"
    assert done.phase == "Pending"


def test_rollback_never_runs_when_nothing_fails() -> None:
    spec = TimelineSpec(
        "ok",
        (StepSpec("Cluster", run=5), StepSpec("Rollback", run=5, on_failure=True)),
    )
    snap = snapshot(plan_timeline(spec, T0, 1, ids()), T0 + 1000)
    assert snap.phase == "Success"
    assert [point.task_type for point in snap.points] == ["Cluster"]


def test_scenario_cancel_freezes_the_tasks() -> None:
    p = plan("cancelled")
    assert at(p, 30).phase == "Pending"
    snap = at(p, 40)
    assert snap.phase == "Cancel"
    assert statuses(snap)["PreCheck"] == "Failed"
    assert snap.updated_at == T0 + 40


def test_cancel_while_running_stops_every_task_where_it_was() -> None:
    p = cancel(plan("success"), T0 + 70)
    snap = at(p, 10_000)
    assert snap.phase == "Cancel"
    assert statuses(snap)["Cluster"] == "Running"
    assert statuses(snap)["PostCheck"] == "Init"
    assert snap.settled


def test_forcing_a_task_running_completes_the_tasks_before_it() -> None:
    p = force_task(plan("success"), "Cluster", "Running", T0 + 1)
    snap = at(p, 1)
    assert statuses(snap) == {
        "PreCheck": "Success",
        "Snapshot": "Success",
        "Cluster": "Running",
        "PostCheck": "Init",
    }
    # Then the script goes on from there: Cluster runs 120 s, PostCheck 22 s.
    assert statuses(at(p, 121))["Cluster"] == "Success"
    assert at(p, 143).phase == "Success"


def test_forcing_a_failure_starts_the_rollback_path() -> None:
    p = force_task(plan("success"), "Cluster", "Failed", T0 + 100)
    spec_has_no_rollback = at(p, 10_000)
    assert spec_has_no_rollback.phase == "Pending"
    assert statuses(spec_has_no_rollback)["PostCheck"] == "Init"

    with_rollback = force_task(plan("rollback"), "Snapshot", "Failed", T0 + 40)
    assert statuses(at(with_rollback, 40))["Snapshot"] == "Failed"
    assert statuses(at(with_rollback, 50))["Rollback"] == "Queuing"  # wait 10
    assert statuses(at(with_rollback, 10_000))["Cluster"] == "Init"


def test_forcing_init_or_an_unknown_status_holds_the_workflow() -> None:
    held = force_task(plan("success"), "Snapshot", "Init", T0 + 30)
    assert statuses(at(held, 10_000))["Snapshot"] == "Init"
    assert at(held, 10_000).phase == "Running"  # PreCheck done, the rest waits
    odd = force_task(plan("success"), "Cluster", "Paused", T0 + 70)
    assert statuses(at(odd, 10_000))["Cluster"] == "Paused"
    assert at(odd, 10_000).phase == "Running"


def test_forcing_queuing_reruns_a_failed_task() -> None:
    failed = plan("precheck-fails")
    rerun = force_task(failed, "PreCheck", "Queuing", T0 + 100)
    assert statuses(at(rerun, 100))["PreCheck"] == "Queuing"
    point = at(rerun, 103).points[0]
    assert (point.status, point.started_at, point.ended_at) == ("Running", T0 + 102, None)
    # The rerun uses the script's outcome again: it fails again.
    assert at(rerun, 122).phase == "Pending"


def test_forcing_a_phase_overrides_until_the_next_force() -> None:
    p = force_phase(plan("success"), "Paused", T0 + 10)
    assert at(p, 9).phase == "Running"
    assert at(p, 500).phase == "Paused"
    driven_again = force_task(p, "Cluster", "Success", T0 + 600)
    assert at(driven_again, 600).phase == "Running"  # PostCheck still to run


def test_forcing_phase_cancel_is_a_cancel() -> None:
    p = force_phase(plan("success"), "Cancel", T0 + 70)
    assert statuses(at(p, 10_000))["Cluster"] == "Running"


def test_forcing_an_unknown_task_is_refused() -> None:
    with pytest.raises(KeyError):
        force_task(plan("success"), "Nope", "Running", T0)


def test_end_phase_applies_once_everything_happened() -> None:
    spec = TimelineSpec("x", (StepSpec("Cluster", run=5, outcome="Failed"),), end_phase="Cancel")
    p = plan_timeline(spec, T0, 1, ids())
    assert at(p, 5.5).phase == "Running"
    assert at(p, 6).phase == "Cancel"


def test_default_lines_are_critical_up_to_cluster() -> None:
    steps = tuple(builtin_timelines()["rollback"].steps)
    assert default_lines(steps) == (
        LineSpec("PreCheck", "Snapshot", True),
        LineSpec("Snapshot", "Cluster", True),
        LineSpec("Cluster", "PostCheck", False),
        LineSpec("Cluster", "Rollback", False),
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: StepSpec("Cluster", run=-1),
        lambda: StepSpec("Cluster", outcome="Running"),
        lambda: TimelineSpec("empty", ()),
        lambda: TimelineSpec("twice", (StepSpec("Cluster"), StepSpec("Cluster"))),
    ],
)
def test_invalid_timelines_are_refused(build: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        build()  # type: ignore[operator]


ORDER = {"Init": 0, "Queuing": 1, "Running": 2, "Success": 3, "Failed": 3}

steps_strategy = st.lists(
    st.builds(
        StepSpec,
        task_type=st.sampled_from(["PreCheck", "Snapshot", "Cluster", "PostCheck", "Rollback"]),
        wait=st.floats(0, 50),
        queue=st.floats(0, 50),
        run=st.floats(0, 500),
        outcome=st.sampled_from(["Success", "Failed"]),
        on_failure=st.booleans(),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda step: step.task_type,
)


@settings(max_examples=200, deadline=None)
@given(
    steps=steps_strategy,
    scale=st.floats(0.1, 100),
    times=st.lists(st.floats(-10, 5_000), min_size=2, max_size=20),
    cancel_at=st.none() | st.floats(0, 2_000),
)
def test_any_timeline_only_moves_forward(
    steps: list[StepSpec], scale: float, times: list[float], cancel_at: float | None
) -> None:
    p = plan_timeline(TimelineSpec("any", tuple(steps)), T0, scale, ids())
    if cancel_at is not None:
        p = cancel(p, T0 + cancel_at)
    previous: WorkflowSnapshot | None = None
    for moment in sorted(times):
        snap = snapshot(p, T0 + moment)
        shown = statuses(snap)
        assert T0 <= snap.updated_at <= max(T0, T0 + moment)
        if snap.phase == "Success":
            assert set(shown.values()) == {"Success"}
        if snap.phase == "Pending":
            assert "Failed" in shown.values()
        if previous is not None:
            assert snap.updated_at >= previous.updated_at
            for task_type, status in statuses(previous).items():
                assert ORDER[shown[task_type]] >= ORDER[status]  # shown tasks stay shown
            if previous.phase == "Cancel":
                assert snap.phase == "Cancel"
            if previous.phase == "Success":  # final, unless cancelled by force
                assert snap.phase in ("Success", "Cancel")
        for point in snap.points:
            if point.ended_at is not None:
                assert point.started_at is not None
                assert point.started_at <= point.ended_at
        previous = snap
