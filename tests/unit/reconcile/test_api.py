"""The small API around `reconcile` the kopf handler uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from cce_upgrade_watch.cce import errors
from cce_upgrade_watch.cce.models import parse_workflow_list
from cce_upgrade_watch.events import MAX_EVENT_MESSAGE, Event, EventReason, EventType
from cce_upgrade_watch.reconcile import (
    PollFailure,
    WorkflowsFetched,
    acknowledge_generation,
    next_poll_interval,
    reconcile,
    status_patch,
)

from ._support import as_stored, make_spec, parse_now

NOW = parse_now("2024-03-01T08:00:00Z")


def _workflow(phase: str, uid: str = "wf-1") -> WorkflowsFetched:
    item = {
        "metadata": {"uid": uid, "creationTimestamp": "2024-03-01 07:59:00 +0000 UTC"},
        "spec": {"clusterVersion": "v1.28.3-r0", "targetVersion": "v1.29.1-r0"},
        "status": {
            "phase": phase,
            "pointStatuses": [{"taskType": "PreCheck", "status": "Running"}],
        },
    }
    return WorkflowsFetched(parse_workflow_list({"items": [item]}).items)


class ReadOnlyView(Mapping[str, Any]):
    """Like kopf's `status` kwarg: a mapping, not a dict."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


# ---------------------------------------------------------------- status_patch


def test_status_patch_is_none_when_equal() -> None:
    status = reconcile(None, make_spec(), 1, _workflow("Running"), NOW).status
    assert status_patch(as_stored(status), status) is None


def test_status_patch_deletes_keys_the_new_status_lacks() -> None:
    spec = make_spec()
    running = as_stored(reconcile(None, spec, 1, _workflow("Running"), NOW).status)
    assert running["currentTask"] == "PreCheck"
    # An active workflow vanishing is believed at the second answer that lacks it.
    first = reconcile(running, spec, 1, WorkflowsFetched([]), NOW)
    assert status_patch(running, first.status) is None
    done = reconcile(running, spec, 1, WorkflowsFetched([]), NOW, first.unconfirmed).status
    patch = status_patch(running, done)
    assert patch is not None
    for key in ("phase", "workflowID", "currentTask", "progress", "pointStatuses"):
        assert patch[key] is None  # JSON merge patch: null deletes
    assert "observedGeneration" not in patch  # unchanged


def test_status_patch_leaves_keys_it_does_not_own() -> None:
    status = reconcile(None, make_spec(), 1, _workflow("Running"), NOW).status
    stored = {**as_stored(status), "kopf": {"progress": {}}, "someoneElse": 1}
    assert status_patch(stored, status) is None
    assert status_patch(None, status) == status


# ---------------------------------------------------------------- next_poll_interval


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (_workflow("Init"), timedelta(seconds=30)),
        (_workflow("Running"), timedelta(seconds=30)),
        (_workflow("Pending"), timedelta(seconds=30)),  # stuck, but may move any time
        (_workflow("Success"), timedelta(minutes=5)),
        (_workflow("Weird"), timedelta(minutes=5)),
        (WorkflowsFetched([]), timedelta(minutes=5)),
    ],
)
def test_next_poll_interval_follows_the_phase(
    outcome: WorkflowsFetched, expected: timedelta
) -> None:
    spec = make_spec()
    status = reconcile(None, spec, 1, outcome, NOW).status
    assert next_poll_interval(status, spec) == expected


def test_next_poll_interval_during_failures() -> None:
    spec = make_spec(pollInterval="10m", activePollInterval="15s")
    running = as_stored(reconcile(None, spec, 1, _workflow("Running"), NOW).status)
    throttled = reconcile(running, spec, 1, PollFailure("Throttled", "429"), NOW).status
    # A transient failure while an upgrade runs: keep looking closely.
    assert next_poll_interval(throttled, spec) == timedelta(seconds=15)
    # The operator's clock off (X-Sdk-Date out of range): fixed by NTP, not by editing
    # an object, so retried like a transient failure, and not Stalled.
    skewed = reconcile(running, spec, 1, PollFailure("ClockSkew", "clock"), NOW).status
    assert next_poll_interval(skewed, spec) == timedelta(seconds=15)
    stalled = next(c for c in skewed["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("False", "NotStalled")
    needs_a_person = (
        "CredentialsNotFound",
        "CredentialsInvalid",
        "Forbidden",
        "ClusterNotFound",
        "InvalidEndpoint",
        "EndpointNotAllowed",
        "RequestRejected",
        "InvalidSpec",
    )
    for reason in needs_a_person:
        failed = reconcile(running, spec, 1, PollFailure(reason, "x"), NOW).status
        # A person must act: polling fast cannot help, and kstatus must say Failed.
        assert next_poll_interval(failed, spec) == timedelta(minutes=10)
        conditions = {c["type"]: (c["status"], c["reason"]) for c in failed["conditions"]}
        assert conditions["Stalled"] == ("True", reason)
        assert conditions["Reconciling"] == ("False", reason)
    assert next_poll_interval(None, spec) == timedelta(minutes=10)
    # The cloud or the API server did not answer: a retry soon may work, upgrade or not.
    idle = as_stored(reconcile(None, spec, 1, _workflow("Success"), NOW).status)
    outage = PollFailure("ApiUnavailable", "503")
    first = reconcile(idle, spec, 1, outage, NOW)
    second = reconcile(as_stored(first.status), spec, 1, outage, NOW, first.unconfirmed)
    synced = {c["type"]: c for c in second.status["conditions"]}["Synced"]
    assert (synced["status"], synced["reason"]) == ("False", "ApiUnavailable")
    assert next_poll_interval(second.status, spec, second.unconfirmed) == timedelta(seconds=15)


# ---------------------------------------------------------------- acknowledge_generation


def test_acknowledge_generation_touches_only_generations() -> None:
    stored = as_stored(reconcile(None, make_spec(), 1, _workflow("Running"), NOW).status)
    acknowledged = acknowledge_generation({**stored, "kopf": {}}, 4)
    assert acknowledged["observedGeneration"] == 4
    assert {c["observedGeneration"] for c in acknowledged["conditions"]} == {4}
    assert {
        k: v for k, v in acknowledged.items() if k not in ("observedGeneration", "conditions")
    } == {k: v for k, v in stored.items() if k not in ("observedGeneration", "conditions")}
    assert [dict(c, observedGeneration=1) for c in acknowledged["conditions"]] == stored[
        "conditions"
    ]
    assert acknowledge_generation(None, 2) == {"observedGeneration": 2}


# ---------------------------------------------------------------- inputs


def test_accepts_a_read_only_mapping_and_naive_now() -> None:
    spec = make_spec()
    stored = as_stored(reconcile(None, spec, 1, _workflow("Running"), NOW).status)
    naive = datetime(2024, 3, 1, 9, 0)
    result = reconcile(ReadOnlyView(stored), spec, 1, _workflow("Success"), naive)
    assert result.status["lastChangeTime"] == "2024-03-01T09:00:00Z"
    assert [e.reason for e in result.events] == [EventReason.PHASE_CHANGED]
    assert stored["phase"] == "Running"  # the stored status is not modified


def test_poll_failure_from_a_cce_error_drops_per_try_details() -> None:
    first = errors.Throttled(
        "throttled",
        operation="list upgrade workflows",
        status_code=429,
        request_id="req-1",
        retry_after=3,
    )
    second = errors.Throttled(
        "throttled",
        operation="list upgrade workflows",
        status_code=429,
        request_id="req-2",
        retry_after=7,
    )
    assert "req-1" in str(first)
    failure = PollFailure.from_error(first)
    assert failure == PollFailure.from_error(second)
    assert failure.reason == "Throttled"
    assert failure.message == "list upgrade workflows: throttled: HTTP 429"
    assert not failure.needs_a_person
    rejected = PollFailure.from_error(errors.CredentialsRejected("credentials rejected"))
    assert rejected.reason == "CredentialsInvalid"
    assert rejected.needs_a_person


def test_poll_failure_is_made_safe_for_a_condition() -> None:
    failure = PollFailure("", "x" * 5000)
    assert failure.reason == "ApiUnavailable"
    assert len(failure.message) <= 900
    assert PollFailure("Forbidden").message == "Polling failed (Forbidden)"
    assert PollFailure("Throttled", "a\n  b\tc ").message == "a b c"


def test_event_messages_are_capped() -> None:
    event = Event(EventType.WARNING, EventReason.POLL_FAILED, "y" * 5000)
    assert len(event.message) == MAX_EVENT_MESSAGE
    assert event.message.endswith("...")
