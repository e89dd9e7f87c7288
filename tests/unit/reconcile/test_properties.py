"""Property tests: random sequences of polls (workflow lists or failures) fed through
`reconcile` one after another, the way the poll loop does, with the status stored
through a JSON round trip in between.

The invariants are the ones the handler and kstatus readers rely on: the core
never raises; the status is plain JSON without nulls; the conditions agree with
each other; `lastTransitionTime` moves only when a status flips; replaying an
input changes nothing and emits nothing; `status_patch` turns stored into new;
an answer held back for confirmation (reconcile.py) changes nothing at all; no
two Events of one poll share a key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cce_upgrade_watch.cce.models import UpgradeWorkflow
from cce_upgrade_watch.conditions import CONDITION_ORDER, NEEDS_A_PERSON, find_condition
from cce_upgrade_watch.events import EventReason, EventType
from cce_upgrade_watch.reconcile import (
    NOTHING_UNCONFIRMED,
    OWNED_STATUS_KEYS,
    PollFailure,
    PollOutcome,
    WorkflowsFetched,
    next_poll_interval,
    reconcile,
    status_patch,
)

from ._support import as_stored, make_spec

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

START = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
PHASES = ["Init", "Running", "Pending", "Success", "Cancel", "Paused", None]
TASK_STATUSES = ["Init", "Queuing", "Running", "Success", "Failed", "Skipped", None]
TASK_TYPES = ["PreCheck", "Snapshot", "Cluster", "PostCheck", "Rollback", None]
REASONS = [
    "CredentialsNotFound",
    "CredentialsInvalid",
    "Forbidden",
    "ClusterNotFound",
    "Throttled",
    "ApiUnavailable",
    "InvalidResponse",
    "not a reason",
]

points = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "taskType": st.sampled_from(TASK_TYPES),
            "taskID": st.sampled_from(["t-1", "t-2", "t-3"]),
            "status": st.sampled_from(TASK_STATUSES),
            "startTimeStamp": st.sampled_from(
                ["2024-03-01 08:00:05 +0000 UTC", "2024-03-01T16:00:05+08:00", ""]
            ),
        },
    ),
    max_size=5,
)


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    """One workflow in API JSON; few uids and creation times, so they collide."""
    return {
        "metadata": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "uid": st.sampled_from(["wf-a", "wf-b", "wf-c", "wf-d"]),
                    "creationTimestamp": st.sampled_from(
                        [
                            "2024-01-01 00:00:00 +0000 UTC",
                            "2024-02-01 00:00:00 +0800 CST",
                            "2024-02-01T00:00:00Z",
                        ]
                    ),
                },
            )
        ),
        "spec": {
            "clusterVersion": draw(st.sampled_from(["v1.28.3-r0", "v1.29.1-r0"])),
            "targetVersion": draw(st.sampled_from(["v1.29.1-r0", "v1.30.2-r0"])),
        },
        "status": {
            "phase": draw(st.sampled_from(PHASES)),
            "pointStatuses": draw(points),
            "lineStatuses": [{"startPoint": {"taskType": "PreCheck"}, "critical": "true"}],
        },
    }


poll_outcomes: st.SearchStrategy[PollOutcome] = st.one_of(
    st.lists(workflows(), max_size=4).map(
        lambda items: WorkflowsFetched([UpgradeWorkflow.model_validate(item) for item in items])
    ),
    st.builds(PollFailure, reason=st.sampled_from(REASONS), message=st.text(max_size=40)),
)

polls = st.lists(
    st.tuples(poll_outcomes, st.integers(0, 3), st.integers(0, 1)),  # outcome, limit, +gen
    min_size=1,
    max_size=6,
)


def _no_nulls(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(_no_nulls(item) for item in value.values())
    if isinstance(value, list):
        return all(_no_nulls(item) for item in value)
    return True


def _check_conditions(status: dict[str, Any], generation: int) -> None:
    conditions = status["conditions"]
    assert [c["type"] for c in conditions] == [str(t) for t in CONDITION_ORDER]
    state = {c["type"]: c for c in conditions}
    for condition in conditions:
        assert condition["status"] in ("True", "False")
        assert condition["observedGeneration"] == generation
        assert condition["reason"]
    ready, synced = state["Ready"], state["Synced"]
    reconciling, stalled = state["Reconciling"], state["Stalled"]
    if ready["status"] == "True":
        assert synced["status"] == "True"
        assert reconciling["status"] == "False"
        assert stalled["status"] == "False"
    else:
        blockers = [c["reason"] for c in (stalled, reconciling) if c["status"] == "True"] + (
            [synced["reason"]] if synced["status"] == "False" else []
        )
        assert ready["reason"] in blockers
    # kstatus checks Reconciling before Stalled: both True would hide Failed.
    assert not (stalled["status"] == "True" and reconciling["status"] == "True")
    if synced["status"] == "False" and synced["reason"] in NEEDS_A_PERSON:
        assert stalled["status"] == "True"


def _merge(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(stored)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


@PROPERTY_SETTINGS
@given(polls)
def test_sequences_keep_the_invariants(sequence: list[tuple[PollOutcome, int, int]]) -> None:
    stored: dict[str, Any] | None = None
    generation = 1
    now = START
    unconfirmed = NOTHING_UNCONFIRMED
    for outcome, history_limit, generation_step in sequence:
        generation += generation_step
        now += timedelta(seconds=30)
        spec = make_spec(historyLimit=history_limit)

        result = reconcile(stored, spec, generation, outcome, now, unconfirmed)
        status = result.status
        previous_unconfirmed, unconfirmed = unconfirmed, result.unconfirmed
        assert len({event.key for event in result.events}) == len(result.events)
        if unconfirmed.pending and status_patch(stored, status) is None:
            # Held back until the next poll says the same: nothing changes.
            assert stored is not None
            assert status == stored
            assert result.events == []
            assert next_poll_interval(status, spec, unconfirmed) == spec.active_poll_interval
            continue

        json.dumps(status)  # plain JSON
        assert _no_nulls(status)
        assert set(status) <= set(OWNED_STATUS_KEYS)
        assert status["observedGeneration"] == generation
        assert len(status.get("history", [])) <= history_limit
        _check_conditions(status, generation)

        now_text = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        for condition in status["conditions"]:
            before = find_condition((stored or {}).get("conditions"), condition["type"])
            if before is not None and before["status"] == condition["status"]:
                assert condition["lastTransitionTime"] == before["lastTransitionTime"]
            else:
                assert condition["lastTransitionTime"] == now_text

        old_synced = find_condition((stored or {}).get("conditions"), "Synced")
        new_synced = find_condition(status["conditions"], "Synced")
        assert new_synced is not None
        poll_failed = [e for e in result.events if e.reason == EventReason.POLL_FAILED]
        starts_failing = new_synced["status"] == "False" and (
            old_synced is None or old_synced["status"] != "False"
        )
        assert len(poll_failed) == (1 if starts_failing else 0)
        for event in result.events:
            if event.reason == EventReason.POLL_FAILED:
                assert event.type == EventType.WARNING

        if isinstance(outcome, PollFailure) and stored is not None:
            # A failed poll never touches the mirrored workflow (beyond historyLimit).
            for key in ("phase", "workflowID", "pointStatuses", "lastChangeTime"):
                assert status.get(key) == stored.get(key)
            assert not [e for e in result.events if e.reason != EventReason.POLL_FAILED]

        patch = status_patch(stored, status)
        if stored is not None:
            assert _merge(stored, patch or {}) == status

        new_stored = as_stored(status)
        replay = reconcile(
            new_stored, spec, generation, outcome, now + timedelta(seconds=7), previous_unconfirmed
        )
        assert replay.status == new_stored
        assert replay.events == []
        assert status_patch(new_stored, replay.status) is None

        interval = next_poll_interval(status, spec)
        assert interval in (spec.poll_interval, spec.active_poll_interval)
        stored = new_stored


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
junk_status = st.dictionaries(
    st.sampled_from([*OWNED_STATUS_KEYS, "kopf", "other"]), json_values, max_size=8
)


@PROPERTY_SETTINGS
@given(junk_status, poll_outcomes)
def test_any_stored_status_is_survived(stored: dict[str, Any], outcome: PollOutcome) -> None:
    result = reconcile(stored, make_spec(), 3, outcome, START)
    json.dumps(result.status)
    assert _no_nulls(result.status)
    if result.unconfirmed.pending:
        # Held back for confirmation: nothing is written, junk or not.
        assert status_patch(stored, result.status) is None
        assert result.events == []
        return
    _check_conditions(result.status, 3)
    status_patch(stored, result.status)
