"""The status tells the truth in the cases issue #10 found it did not.

Each test drives the pure core the way the poll loop does: the status of one
poll is stored (JSON round trip) and, with what the poll left unconfirmed,
goes into the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cce_upgrade_watch.cce.models import parse_workflow_list
from cce_upgrade_watch.events import MAX_EVENTS_PER_POLL, EventReason, EventType
from cce_upgrade_watch.reconcile import (
    NOTHING_UNCONFIRMED,
    PollFailure,
    PollOutcome,
    ReconcileResult,
    Unconfirmed,
    WorkflowsFetched,
    acknowledge_generation,
    next_poll_interval,
    reconcile,
    status_patch,
)
from cce_upgrade_watch.spec import WatchSpec

from ._support import as_stored, event_line, make_spec, parse_now

START = parse_now("2024-03-01T08:00:00Z")


def wf(
    uid: str,
    phase: str,
    *tasks: tuple[str, str],
    created: str = "2024-03-01 07:00:00 +0000 UTC",
    versions: tuple[str, str] = ("v1.28.3-r0", "v1.29.1-r0"),
) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "creationTimestamp": created, "updateTimestamp": created},
        "spec": {"clusterVersion": versions[0], "targetVersion": versions[1]},
        "status": {
            "phase": phase,
            "pointStatuses": [{"taskType": task, "status": status} for task, status in tasks],
        },
    }


def fetched(*items: dict[str, Any]) -> WorkflowsFetched:
    return WorkflowsFetched(parse_workflow_list({"items": list(items)}).items)


def condition(status: dict[str, Any], kind: str) -> tuple[str, str]:
    found = next(c for c in status["conditions"] if c["type"] == kind)
    return found["status"], found["reason"]


@dataclass
class Watch:
    """One object polled again and again, as the poll loop does it."""

    spec: WatchSpec = field(default_factory=make_spec)
    stored: dict[str, Any] | None = None
    unconfirmed: Unconfirmed = NOTHING_UNCONFIRMED
    now: Any = START
    generation: int = 1
    writes: int = 0

    def poll(self, outcome: PollOutcome) -> ReconcileResult:
        self.now += timedelta(seconds=30)
        result = reconcile(
            self.stored, self.spec, self.generation, outcome, self.now, self.unconfirmed
        )
        if status_patch(self.stored, result.status) is not None:
            self.writes += 1
        self.stored = as_stored(result.status)
        self.unconfirmed = result.unconfirmed
        return result

    def lines(self, outcome: PollOutcome) -> list[str]:
        return [event_line(event) for event in self.poll(outcome).events]


# ---------------------------------------------------------------- 4. Init is not Reconciling


def test_init_is_ready_not_reconciling_and_still_polled_closely() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Init", ("PreCheck", "Init"))))
    assert watch.stored is not None
    assert condition(watch.stored, "Reconciling") == ("False", "UpgradeNotStarted")
    assert condition(watch.stored, "Ready") == ("True", "UpgradeNotStarted")
    assert condition(watch.stored, "Stalled") == ("False", "NotStalled")
    assert next_poll_interval(watch.stored, watch.spec) == watch.spec.active_poll_interval


def test_a_task_queued_or_running_is_reconciling_whatever_the_phase_says() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Init", ("PreCheck", "Queuing"))))
    assert watch.stored is not None
    assert condition(watch.stored, "Reconciling") == ("True", "UpgradeRunning")
    assert condition(watch.stored, "Ready") == ("False", "UpgradeRunning")


# ---------------------------------------------------------------- 5. discovered already failed


def test_a_workflow_first_seen_failed_raises_the_warnings_its_facts_imply() -> None:
    watch = Watch()
    lines = watch.lines(fetched(wf("a", "Pending", ("PreCheck", "Failed"), ("Cluster", "Init"))))
    assert lines == [
        "Normal WorkflowDiscovered: Found upgrade workflow a: v1.28.3-r0 -> v1.29.1-r0, "
        "phase Pending",
        "Warning TaskStatusChanged: PreCheck: (none) -> Failed",
        "Warning PhaseChanged: (none) -> Pending (v1.28.3-r0 -> v1.29.1-r0)",
    ]


def test_a_workflow_first_seen_cancelled_raises_a_warning_too() -> None:
    lines = Watch().lines(fetched(wf("a", "Cancel", ("PreCheck", "Success"))))
    assert lines[1:] == ["Warning PhaseChanged: (none) -> Cancel (v1.28.3-r0 -> v1.29.1-r0)"]


# ---------------------------------------------------------------- 6. the active one is current


def test_a_newer_init_workflow_does_not_hide_the_running_one_going_pending() -> None:
    watch = Watch()
    older = "2024-03-01 07:00:00 +0000 UTC"
    newer = "2024-03-01 07:30:00 +0000 UTC"
    watch.poll(
        fetched(
            wf("a", "Running", ("PreCheck", "Running"), created=older),
            wf("b", "Init", created=newer),
        )
    )
    assert watch.stored is not None
    assert watch.stored["workflowID"] == "a"
    assert condition(watch.stored, "Ready") == ("False", "UpgradeRunning")

    lines = watch.lines(
        fetched(
            wf("a", "Pending", ("PreCheck", "Failed"), created=older),
            wf("b", "Init", created=newer),
        )
    )
    assert lines == [
        "Warning TaskStatusChanged: PreCheck: Running -> Failed",
        "Warning PhaseChanged: Running -> Pending (v1.28.3-r0 -> v1.29.1-r0)",
    ]
    assert watch.stored["workflowID"] == "a"
    assert condition(watch.stored, "Stalled") == ("True", "TaskFailed")
    assert condition(watch.stored, "Ready") == ("False", "TaskFailed")


def test_a_pending_workflow_in_history_is_stalled_and_its_phase_changes_are_told() -> None:
    watch = Watch()
    old = wf("a", "Pending", ("PreCheck", "Failed"), created="2024-03-01 07:00:00 +0000 UTC")
    new = wf("b", "Running", ("PreCheck", "Running"), created="2024-03-01 07:30:00 +0000 UTC")
    watch.poll(fetched(old, new))
    assert watch.stored is not None
    assert watch.stored["workflowID"] == "b"  # the newest active one
    assert [entry["phase"] for entry in watch.stored["history"]] == ["Pending"]
    assert condition(watch.stored, "Stalled") == ("True", "TaskFailed")
    assert condition(watch.stored, "Reconciling")[0] == "False"  # never both True (kstatus)

    old["status"]["phase"] = "Cancel"
    lines = watch.lines(fetched(old, new))
    assert lines == ["Warning PhaseChanged: Pending -> Cancel (v1.28.3-r0 -> v1.29.1-r0)"]
    assert condition(watch.stored, "Stalled") == ("False", "NotStalled")


# ---------------------------------------------------------------- 7. vanished workflows


def test_an_active_workflow_missing_from_one_answer_changes_nothing() -> None:
    watch = Watch()
    running = fetched(wf("a", "Running", ("PreCheck", "Running")))
    watch.poll(running)
    before, writes = watch.stored, watch.writes
    for glitch in (fetched(), fetched(wf("z", "Success", created="2020-01-01T00:00:00Z"))):
        result = watch.poll(glitch)
        assert result.events == []
        assert watch.stored == before  # status and conditions as they were
        assert watch.writes == writes
        assert next_poll_interval(watch.stored, watch.spec, watch.unconfirmed) == (
            watch.spec.active_poll_interval
        )
        watch.poll(running)  # back again: nothing happened at all
        assert watch.unconfirmed == NOTHING_UNCONFIRMED
        assert watch.stored == before


def test_an_active_workflow_missing_from_two_answers_in_a_row_is_gone() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Pending", ("PreCheck", "Failed"))))
    assert watch.lines(fetched()) == []
    assert watch.unconfirmed.missing == "a"
    lines = watch.lines(fetched())
    assert lines == [
        "Normal WorkflowGone: Upgrade workflow a (v1.28.3-r0 -> v1.29.1-r0, phase Pending) "
        "is no longer listed by the CCE API"
    ]
    assert watch.stored is not None
    assert "phase" not in watch.stored
    assert condition(watch.stored, "Ready") == ("True", "NoUpgrade")
    assert watch.unconfirmed == NOTHING_UNCONFIRMED


def test_a_restart_between_the_two_answers_only_costs_one_more_poll() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Running")))
    watch.poll(fetched())
    watch.unconfirmed = NOTHING_UNCONFIRMED  # the restarted operator remembers nothing
    assert watch.lines(fetched()) == []
    assert len(watch.lines(fetched())) == 1


# ---------------------------------------------------------------- 8. another cluster


def test_another_cluster_gets_a_new_mirror_before_anything_else() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Running", ("PreCheck", "Running"))))
    assert watch.stored is not None
    assert watch.stored["watched"] == {
        "region": "ap-southeast-1",
        "projectId": "0123456789abcdef0123456789abcdef",
        "clusterId": "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
    }
    watch.spec = make_spec(clusterId="11111111-2222-3333-4444-555555555555")
    watch.generation = 2
    lines = watch.lines(fetched(wf("c", "Success", versions=("v1.27.4-r0", "v1.28.3-r0"))))
    # No WorkflowGone for the old cluster's workflow: it did not vanish, it was left.
    assert lines == [
        "Normal WorkflowDiscovered: Found upgrade workflow c: v1.27.4-r0 -> v1.28.3-r0, "
        "phase Success"
    ]
    assert watch.stored["watched"]["clusterId"] == "11111111-2222-3333-4444-555555555555"
    assert watch.stored["workflowID"] == "c"


def test_a_failed_first_poll_of_another_cluster_leaves_an_empty_mirror() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Running", ("PreCheck", "Running"))))
    watch.spec = make_spec(endpoint="https://cce.example.internal", region=None)
    watch.generation = 2
    lines = watch.lines(PollFailure("ClusterNotFound", "no such cluster"))
    assert watch.stored is not None
    mirror = {"phase", "workflowID", "pointStatuses", "history", "clusterVersion", "currentTask"}
    assert not mirror & set(watch.stored)
    assert watch.stored["watched"] == {
        "endpoint": "https://cce.example.internal",
        "projectId": "0123456789abcdef0123456789abcdef",
        "clusterId": "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
    }
    assert watch.stored["observedGeneration"] == 2
    assert condition(watch.stored, "Synced") == ("False", "ClusterNotFound")
    assert [line.split(":")[0] for line in lines] == ["Warning PollFailed"]


def test_a_retryable_failure_of_another_cluster_is_not_held_either() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Success")))
    watch.spec = make_spec(projectId="f" * 32)
    watch.poll(PollFailure("ApiUnavailable", "503"))
    assert watch.stored is not None
    assert "phase" not in watch.stored
    assert condition(watch.stored, "Synced") == ("False", "ApiUnavailable")


def test_suspending_a_watch_of_another_cluster_drops_the_old_mirror() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Success")))
    other = make_spec(clusterId="11111111-2222-3333-4444-555555555555", suspend=True)
    status = acknowledge_generation(watch.stored, 2, other)
    assert "phase" not in status
    assert status["watched"]["clusterId"] == "11111111-2222-3333-4444-555555555555"
    assert status["observedGeneration"] == 2


# ---------------------------------------------------------------- 10. CURRENT and flapping


def test_current_version_is_the_target_once_the_upgrade_succeeded() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Running")))
    assert watch.stored is not None
    assert watch.stored["currentVersion"] == "v1.28.3-r0"
    watch.poll(fetched(wf("a", "Success")))
    assert watch.stored["currentVersion"] == "v1.29.1-r0"
    assert watch.stored["clusterVersion"] == "v1.28.3-r0"  # the mirror stays the API's


def test_one_dropped_answer_opens_no_failure_episode() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Success")))
    before, writes = watch.stored, watch.writes
    assert watch.lines(PollFailure("ApiUnavailable", "connection reset")) == []
    assert watch.stored == before
    assert watch.writes == writes
    assert watch.unconfirmed.failed_polls == 1
    assert next_poll_interval(watch.stored, watch.spec, watch.unconfirmed) == (
        watch.spec.active_poll_interval  # confirmed or not, soon
    )
    assert watch.lines(fetched(wf("a", "Success"))) == []  # no PollFailed/PollRecovered pair
    assert watch.writes == writes


def test_two_failed_polls_in_a_row_open_one_episode() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Success")))
    watch.poll(PollFailure("ApiUnavailable", "503"))
    lines = watch.lines(PollFailure("Throttled", "429"))
    assert lines == ["Warning PollFailed: Polling the CCE API failed (Throttled): 429"]
    assert watch.lines(PollFailure("ApiUnavailable", "503")) == []  # same episode
    assert watch.lines(fetched(wf("a", "Success"))) == [
        "Normal PollRecovered: Polling the CCE API works again (it failed with ApiUnavailable)"
    ]


def test_a_failure_that_needs_a_person_opens_the_episode_at_once() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Success")))
    lines = watch.lines(PollFailure("CredentialsInvalid", "401"))
    assert lines == ["Warning PollFailed: Polling the CCE API failed (CredentialsInvalid): 401"]


# ---------------------------------------------------------------- Event keys and limits


def _keys(result: ReconcileResult) -> list[str]:
    return [event.key for event in result.events]


def test_event_keys_are_derived_again_from_the_same_stored_status() -> None:
    watch = Watch()
    watch.poll(fetched(wf("a", "Running", ("PreCheck", "Running"))))
    stored = watch.stored
    outcome = fetched(wf("a", "Pending", ("PreCheck", "Failed")))
    first = reconcile(stored, watch.spec, 1, outcome, START + timedelta(minutes=5))
    again = reconcile(stored, watch.spec, 1, outcome, START + timedelta(minutes=9))
    assert len(first.events) == 2
    assert _keys(first) == _keys(again)  # a retried write re-derives the same names


def test_the_same_transition_twice_gets_two_keys() -> None:
    watch = Watch()
    running = fetched(wf("a", "Running", ("PreCheck", "Running")))
    pending = fetched(wf("a", "Pending", ("PreCheck", "Failed")))
    watch.poll(running)
    first = _keys(watch.poll(pending))
    watch.poll(running)
    second = _keys(watch.poll(pending))
    assert len(first) == len(second) == 2
    assert not set(first) & set(second)  # Running -> Pending again is a new Event


def test_one_poll_posts_at_most_ten_events_then_a_summary() -> None:
    tasks: Sequence[tuple[str, str]] = [(f"Task{i:02}", "Init") for i in range(40)]
    watch = Watch()
    watch.poll(fetched(wf("a", "Running", *tasks)))
    moved = [(task, "Failed" if i == 39 else "Success") for i, (task, _) in enumerate(tasks)]
    events = watch.poll(fetched(wf("a", "Running", *moved))).events
    assert len(events) == MAX_EVENTS_PER_POLL + 1
    assert "Warning TaskStatusChanged: Task39: Init -> Failed" in [event_line(e) for e in events]
    summary = events[-1]
    assert (summary.reason, summary.type) == (EventReason.MORE_CHANGES, EventType.NORMAL)
    assert summary.message.startswith("30 more changes in this poll (0 of them Warnings)")
    assert len({event.key for event in events}) == len(events)
