"""One ordering for `check` and the operator: the current workflow, then newest first."""

from __future__ import annotations

from datetime import UTC, datetime

from cce_upgrade_watch.cce.models import parse_workflow_list
from cce_upgrade_watch.cce.ordering import current_first, is_active, newest_first
from cce_upgrade_watch.reconcile import WorkflowsFetched, reconcile
from tests.unit.cce.conftest import workflow, workflow_list
from tests.unit.reconcile._support import make_spec


def _uids(workflows: list) -> list[str | None]:  # type: ignore[type-arg]
    return [w.metadata.uid for w in workflows]


def test_newest_first_by_creation_then_update_then_uid() -> None:
    body = workflow_list(
        workflow("old", created="2023-01-01T00:00:00Z"),
        workflow("no-time", created=""),
        workflow("new", created="2024-06-01 10:00:00 +0200 CEST"),  # 08:00 UTC
        workflow("tie-b", created="2024-06-01T07:00:00Z", updated="2024-06-02T00:00:00Z"),
        workflow("tie-a", created="2024-06-01T07:00:00Z", updated="2024-06-02T00:00:00Z"),
        workflow(
            "tie-updated-later", created="2024-06-01T07:00:00Z", updated="2024-06-03T00:00:00Z"
        ),
    )
    items = parse_workflow_list(body).items
    expected = ["new", "tie-updated-later", "tie-a", "tie-b", "old", "no-time"]
    assert _uids(newest_first(items)) == expected
    assert _uids(newest_first(reversed(items))) == expected
    assert _uids(current_first(items)) == expected  # nothing active: newest first


def test_the_active_workflow_is_current_even_when_a_newer_one_exists() -> None:
    body = workflow_list(
        workflow("a-running", phase="Running", created="2024-06-01T07:00:00Z"),
        workflow("b-init", phase="Init", created="2024-06-01T08:00:00Z"),
        workflow("c-old-pending", phase="Pending", created="2024-05-01T08:00:00Z"),
    )
    items = parse_workflow_list(body).items
    assert _uids(current_first(items)) == ["a-running", "b-init", "c-old-pending"]
    assert _uids(current_first(reversed(items))) == ["a-running", "b-init", "c-old-pending"]


def test_what_counts_as_active() -> None:
    def active(phase: str, status: str) -> bool:
        body = workflow_list(
            workflow("w", phase=phase, points=[{"taskType": "X", "status": status}])
        )
        return is_active(parse_workflow_list(body).items[0])

    assert active("Running", "Init")
    assert active("Pending", "Failed")
    assert active("Init", "Queuing")  # a task queued although the phase still says Init
    assert active("Init", "Failed")
    assert not active("Init", "Init")
    assert not active("Cancel", "Failed")  # cancelled after a failure: over
    assert not active("Success", "Success")


def test_check_and_the_operator_pick_the_same_workflow_on_equal_timestamps() -> None:
    # Equal creation and update times: before, the operator mirrored "c2" while
    # `check` listed "c1" first (ties broke in opposite directions).
    created = updated = "2024-06-01T07:00:00Z"
    items = parse_workflow_list(
        workflow_list(
            workflow("c1", created=created, updated=updated),
            workflow("c2", created=created, updated=updated),
        )
    ).items
    for order in (items, list(reversed(items))):
        checked = current_first(order)[0].metadata.uid
        result = reconcile(None, make_spec(), 1, WorkflowsFetched(order), datetime.now(UTC))
        assert result.status["workflowID"] == checked == "c1"


def test_a_uid_listed_twice_is_kept_once_the_current_copy() -> None:
    """A hostile or broken answer repeating a uid must not put two entries of one
    workflow into the status (the property test found replays that then emitted a
    PhaseChanged Event from nothing)."""
    body = workflow_list(
        workflow("dup", phase="Success", created="2024-06-01T09:00:00Z"),
        workflow("other", phase="Success", created="2024-06-01T08:00:00Z"),
        workflow("dup", phase="Running", created="2024-06-01T07:00:00Z"),
    )
    items = parse_workflow_list(body).items
    ordered = current_first(items)
    assert _uids(ordered) == ["dup", "other"]
    assert ordered[0].status.phase == "Running"
    assert _uids(current_first(reversed(items))) == ["dup", "other"]
