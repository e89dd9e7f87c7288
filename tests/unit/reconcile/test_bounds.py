"""Issue 11.4: what the cloud sends is bounded before it is stored, and a cut list says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cce_upgrade_watch.cce.models import MAX_LIST_ITEMS, MAX_STRING, parse_workflow_list
from cce_upgrade_watch.reconcile import PollFailure, WorkflowsFetched, reconcile

from ._support import as_stored, make_spec

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _huge_answer() -> dict[str, object]:
    points = [
        {"taskType": "T" * 1000, "taskID": f"id-{i}", "status": "Success" * 100}
        for i in range(5000)
    ]
    lines = [{"startPoint": {"taskType": "x" * 999}, "critical": True}] * 300
    return {
        "items": [
            {
                "metadata": {"uid": "u" * 10_000, "creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"clusterVersion": "v" * 10_000, "targetVersion": "w" * 10_000},
                "status": {"phase": "Running", "pointStatuses": points, "lineStatuses": lines},
            }
        ]
    }


def test_a_huge_answer_gives_a_small_status_that_says_what_was_cut() -> None:
    workflows = parse_workflow_list(_huge_answer()).items
    status = reconcile(None, make_spec(), 1, WorkflowsFetched(workflows), NOW).status
    assert len(status["pointStatuses"]) == MAX_LIST_ITEMS
    assert status["pointStatusesOmitted"] == 5000 - MAX_LIST_ITEMS
    assert len(status["lineStatuses"]) == MAX_LIST_ITEMS
    assert status["lineStatusesOmitted"] == 300 - MAX_LIST_ITEMS
    for key in ("workflowID", "clusterVersion", "targetVersion"):
        assert len(status[key]) == MAX_STRING
    # 4.9 MiB before (the review's figure); well under etcd's 1.5 MiB object limit now.
    size = len(json.dumps(status))
    print(f"measured: status of a 5000-task answer: {size} bytes")
    assert size < 200_000


def test_the_cut_marker_survives_a_failed_poll_and_goes_with_the_list() -> None:
    workflows = parse_workflow_list(_huge_answer()).items
    stored = as_stored(reconcile(None, make_spec(), 1, WorkflowsFetched(workflows), NOW).status)
    failed = reconcile(stored, make_spec(), 1, PollFailure("ApiUnavailable", "down"), NOW).status
    assert failed["pointStatusesOmitted"] == 5000 - MAX_LIST_ITEMS
    small = parse_workflow_list(
        {"items": [{"metadata": {"uid": "a"}, "status": {"phase": "Success"}}]}
    ).items
    # The running workflow vanished: believed when the next poll says the same.
    first = reconcile(stored, make_spec(), 1, WorkflowsFetched(small), NOW)
    after = reconcile(
        as_stored(first.status), make_spec(), 1, WorkflowsFetched(small), NOW, first.unconfirmed
    ).status
    assert after["workflowID"] == "a"
    assert "pointStatusesOmitted" not in after
    assert "lineStatusesOmitted" not in after
