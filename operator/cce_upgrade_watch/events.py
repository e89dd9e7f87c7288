"""Kubernetes Events to post, derived only from stored status -> new status.

Nothing here remembers anything between calls: an Event is due exactly when the
status the operator is about to write differs from the one already stored in a
way the design names. Nothing here does I/O.

**Exactly once.** Each Event carries a `key`: the transition it reports (which
workflow, which task, from what to what) together with a fingerprint of the
stored status it was derived from (`status_fingerprint`). The poll loop names
the Kubernetes Event after the object's uid and that key (`event_name`), creates
it *before* the status write that records the transition, and counts
409 AlreadyExists as delivered. So:

- a crash after some Events and before the status write: the restarted operator
  reads the same stored status, derives the same Events with the same names, and
  the ones already created answer 409: none is lost, none doubles;
- a failed status write is retried by the next poll the same way;
- the same transition happening again later (Running -> Pending twice) starts
  from another stored status, so it gets a new name and is reported again.

At most `MAX_EVENTS_PER_POLL` Events come out of one poll (`limit_events`); the
rest are summed up in one more Event, so a hostile answer with thousands of
tasks cannot flood the Events API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from cce_upgrade_watch.cce.models import Phase, TaskStatus
from cce_upgrade_watch.conditions import ConditionType, find_condition

__all__ = [
    "MAX_EVENTS_PER_POLL",
    "MAX_EVENT_MESSAGE",
    "Event",
    "EventReason",
    "EventType",
    "event_name",
    "events_between",
    "limit_events",
    "status_fingerprint",
]

#: events.k8s.io/v1 caps `note` at 1 kB; stay under it for either Event API.
MAX_EVENT_MESSAGE = 1000
#: Events one poll may post for one object; more are summed up in one more Event.
MAX_EVENTS_PER_POLL = 10
# Event names are DNS subdomains (253 characters); keep room for the hash.
_MAX_NAME_PREFIX = 200


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventReason(StrEnum):
    WORKFLOW_DISCOVERED = "WorkflowDiscovered"
    PHASE_CHANGED = "PhaseChanged"
    TASK_STATUS_CHANGED = "TaskStatusChanged"
    POLL_FAILED = "PollFailed"
    POLL_RECOVERED = "PollRecovered"
    WORKFLOW_GONE = "WorkflowGone"
    MORE_CHANGES = "MoreChanges"
    # The lifecycle parts (lifecycle_events.py).
    PRECHECK_FAILED = "PreCheckFailed"
    PRECHECK_PASSED = "PreCheckPassed"
    PRECHECK_EXPIRED = "PreCheckExpired"
    UPGRADE_SCHEDULED = "UpgradeScheduled"
    UPGRADE_RESCHEDULED = "UpgradeRescheduled"
    UPGRADE_UNSCHEDULED = "UpgradeUnscheduled"
    UPGRADE_SOON = "UpgradeSoon"
    PATCH_AVAILABLE = "PatchAvailable"
    BACKUP_COMPLETED = "BackupCompleted"
    LIFECYCLE_UNAVAILABLE = "LifecycleUnavailable"


@dataclass(frozen=True, slots=True)
class Event:
    """One Event for the watched object.

    `key` says which transition it reports, from which stored status (see the
    module's docstring); equal keys mean the same Event, never two.
    """

    type: EventType
    reason: EventReason
    message: str
    key: str = ""

    def __post_init__(self) -> None:
        if len(self.message) > MAX_EVENT_MESSAGE:
            object.__setattr__(self, "message", self.message[: MAX_EVENT_MESSAGE - 3] + "...")


def status_fingerprint(stored: Mapping[str, Any] | None, keys: Iterable[str]) -> str:
    """A short digest of the stored status (only `keys`), the base of Event keys."""
    stored = stored if isinstance(stored, Mapping) else {}
    picked = {key: stored[key] for key in keys if key in stored}
    text = json.dumps(picked, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def event_name(object_name: str, object_uid: str, key: str) -> str:
    """The Event's deterministic name: `<object>.<16 hex>`, like the Events
    Kubernetes' own recorder names (`<object>.<hex>`), from the uid and the key."""
    digest = hashlib.sha256(f"{object_uid}\n{key}".encode()).hexdigest()[:16]
    prefix = object_name[:_MAX_NAME_PREFIX].rstrip(".-") or "cceupgradewatch"
    return f"{prefix}.{digest}"


def limit_events(events: Sequence[Event], limit: int = MAX_EVENTS_PER_POLL) -> list[Event]:
    """At most `limit` Events (Warnings kept first, order kept), then one summary.

    The summary is a Warning when it stands for a Warning, so an alert on
    Warning Events still fires; its key names what it stands for.
    """
    if len(events) <= limit:
        return list(events)
    ranked = sorted(range(len(events)), key=lambda i: events[i].type != EventType.WARNING)
    kept = sorted(ranked[:limit])
    dropped = [events[i] for i in sorted(ranked[limit:])]
    warnings = sum(1 for event in dropped if event.type == EventType.WARNING)
    summary = Event(
        EventType.WARNING if warnings else EventType.NORMAL,
        EventReason.MORE_CHANGES,
        f"{len(dropped)} more changes in this poll ({warnings} of them Warnings) are not "
        "posted one by one; .status shows the current state",
        key="more:" + hashlib.sha256("\n".join(e.key for e in dropped).encode()).hexdigest(),
    )
    return [*(events[i] for i in kept), summary]


_WARNING_PHASES = frozenset({Phase.PENDING, Phase.CANCEL})
# A change into these phases is announced before the task changes of the same poll.
_ANNOUNCING_PHASES = frozenset({Phase.INIT, Phase.RUNNING})
_NONE = "(none)"


@dataclass(frozen=True, slots=True)
class _Workflow:
    """The parts of a mirrored workflow (current or history entry) events compare."""

    id: str | None
    phase: str | None
    cluster_version: str | None
    target_version: str | None
    points: tuple[Mapping[str, Any], ...] = ()

    def versions(self) -> str:
        return f"{self.cluster_version or '?'} -> {self.target_version or '?'}"


def events_between(
    stored: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    observed_history: Sequence[Mapping[str, Any]] | None = None,
    base: str = "",
) -> list[Event]:
    """The Events that going from `stored` to `new` status calls for, in order.

    `observed_history` is every older workflow of this poll in history-entry
    shape, before `historyLimit` cut the list (None: the poll failed, the
    history is the stored one): it lets a PhaseChanged for a workflow that left
    the current slot be reported even when the history keeps none, and tells
    a workflow that vanished (`WorkflowGone`) from one that was only cut off.
    `base` (see `status_fingerprint`) goes into every Event's key.
    """
    stored = stored if isinstance(stored, Mapping) else {}
    events = list(_poll_events(stored, new))
    events.extend(_workflow_events(stored, new, observed_history))
    return [replace(event, key=f"{base}/{event.key}") for event in events]


def _poll_events(stored: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Event]:
    before = find_condition(stored.get("conditions"), ConditionType.SYNCED)
    after = find_condition(new.get("conditions"), ConditionType.SYNCED)
    if after is None:
        return
    was_failing = before is not None and before.get("status") == "False"
    failed_with = before.get("reason") if before is not None else None
    if after.get("status") == "False" and not was_failing:
        # Once per failure episode: a changed reason within it is no new episode.
        yield Event(
            EventType.WARNING,
            EventReason.POLL_FAILED,
            f"Polling the CCE API failed ({after.get('reason')}): {after.get('message')}",
            key="poll-failed",
        )
    elif after.get("status") == "True" and was_failing:
        yield Event(
            EventType.NORMAL,
            EventReason.POLL_RECOVERED,
            f"Polling the CCE API works again (it failed with {failed_with})",
            key="poll-recovered",
        )


def _workflow_events(
    stored: Mapping[str, Any],
    new: Mapping[str, Any],
    observed_history: Sequence[Mapping[str, Any]] | None,
) -> Iterator[Event]:
    current = _current(new)
    previous = _current(stored)
    history = list(
        _history(observed_history if observed_history is not None else new.get("history"))
    )
    known_history = list(_history(stored.get("history")))

    # Older workflows whose phase moved: the one that left the current slot, and
    # any history entry (a stuck upgrade cancelled while a newer one exists).
    before: dict[str | None, _Workflow] = {}
    if previous is not None and previous.id is not None:
        before[previous.id] = previous
    # A stored history entry wins over a current one of the same ID (the API may
    # list one uid twice): each history entry is compared with what it was.
    before.update((w.id, w) for w in known_history if w.id is not None)
    for entry in history:
        if entry.id is None or (current is not None and entry.id == current.id):
            continue  # no ID to follow, or the current one listed twice: told below
        was = before.get(entry.id)
        if was is not None and entry.phase is not None and entry.phase != was.phase:
            yield _phase_changed(was, entry)

    listed = {w.id for w in history}
    if current is not None:
        listed.add(current.id)
    if (
        previous is not None
        and observed_history is not None
        and (previous.id not in listed if previous.id is not None else current is None)
    ):
        yield _gone(previous)

    if current is None:
        return
    if previous is not None and previous.id == current.id:
        yield from _changes_of_one_workflow(previous, current)
        return
    known = _find(known_history, current.id) if current.id else None
    if known is None:
        yield _discovered(current)
        yield from _implied_warnings(current)
    elif current.phase is not None and current.phase != known.phase:
        # Seen before only as history (a newer one went away): no task data to compare.
        yield _phase_changed(known, current)


def _implied_warnings(workflow: _Workflow) -> Iterator[Event]:
    """A workflow first seen already failed: the Warnings its facts would have
    produced had they been seen one by one, so alerts on Warnings miss nothing."""
    for key, point in _keyed(workflow.points):
        if _text(point.get("status")) == TaskStatus.FAILED:
            yield _task_changed(workflow, key, point, None, TaskStatus.FAILED)
    if workflow.phase in _WARNING_PHASES:
        yield _phase_changed(_Workflow(workflow.id, None, None, None), workflow)


def _changes_of_one_workflow(previous: _Workflow, current: _Workflow) -> Iterator[Event]:
    phase_event = None
    if current.phase is not None and current.phase != previous.phase:
        phase_event = _phase_changed(previous, current)
    task_events = list(_task_changes(current, previous.points, current.points))
    # Read in order of cause: a start is announced before its first task, and
    # the last task finishes before the workflow does.
    if phase_event is not None and current.phase in _ANNOUNCING_PHASES:
        yield phase_event
        phase_event = None
    yield from task_events
    if phase_event is not None:
        yield phase_event


def _task_changes(
    workflow: _Workflow, before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
) -> Iterator[Event]:
    old_status = {key: _text(point.get("status")) for key, point in _keyed(before)}
    for key, point in _keyed(after):
        status = _text(point.get("status"))
        if status is None:
            continue
        old = old_status.get(key)
        if old == status or (old is None and status == TaskStatus.INIT):
            # A task that shows up not yet started is no transition.
            continue
        yield _task_changed(workflow, key, point, old, status)


def _task_changed(
    workflow: _Workflow,
    key: tuple[str, str, int],
    point: Mapping[str, Any],
    old: str | None,
    status: str,
) -> Event:
    return Event(
        EventType.WARNING if status == TaskStatus.FAILED else EventType.NORMAL,
        EventReason.TASK_STATUS_CHANGED,
        f"{_task_name(point)}: {old or _NONE} -> {status}",
        key=f"task:{workflow.id}:{key[0]}={key[1]}#{key[2]}:{old}->{status}",
    )


def _keyed(
    points: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[tuple[str, str, int], Mapping[str, Any]]]:
    """Tasks keyed by taskType (their n-th occurrence), else by taskID."""
    seen: dict[tuple[str, str], int] = {}
    for point in points:
        task_type, task_id = _text(point.get("taskType")), _text(point.get("taskID"))
        if task_type is not None:
            base = ("taskType", task_type)
        elif task_id is not None:
            base = ("taskID", task_id)
        else:
            continue
        occurrence = seen.get(base, 0)
        seen[base] = occurrence + 1
        yield (*base, occurrence), point


def _task_name(point: Mapping[str, Any]) -> str:
    return _text(point.get("taskType")) or _text(point.get("taskID")) or "task"


def _phase_changed(before: _Workflow, after: _Workflow) -> Event:
    into_warning = after.phase in _WARNING_PHASES
    return Event(
        EventType.WARNING if into_warning else EventType.NORMAL,
        EventReason.PHASE_CHANGED,
        f"{before.phase or _NONE} -> {after.phase} ({after.versions()})",
        key=f"phase:{after.id}:{before.phase}->{after.phase}",
    )


def _discovered(workflow: _Workflow) -> Event:
    name = f"upgrade workflow {workflow.id}" if workflow.id else "an upgrade workflow"
    return Event(
        EventType.NORMAL,
        EventReason.WORKFLOW_DISCOVERED,
        f"Found {name}: {workflow.versions()}, phase {workflow.phase or 'unknown'}",
        key=f"discovered:{workflow.id}",
    )


def _gone(workflow: _Workflow) -> Event:
    name = f"Upgrade workflow {workflow.id}" if workflow.id else "The upgrade workflow"
    return Event(
        EventType.NORMAL,
        EventReason.WORKFLOW_GONE,
        f"{name} ({workflow.versions()}, phase {workflow.phase or 'unknown'}) is no longer "
        "listed by the CCE API",
        key=f"gone:{workflow.id}",
    )


_CURRENT_KEYS = ("workflowID", "phase", "clusterVersion", "targetVersion", "pointStatuses")


def _current(status: Mapping[str, Any]) -> _Workflow | None:
    if not any(key in status for key in _CURRENT_KEYS):
        return None
    points = status.get("pointStatuses")
    return _Workflow(
        id=_text(status.get("workflowID")),
        phase=_text(status.get("phase")),
        cluster_version=_text(status.get("clusterVersion")),
        target_version=_text(status.get("targetVersion")),
        points=tuple(_mappings(points)),
    )


def _history(entries: Any) -> Iterator[_Workflow]:
    for entry in _mappings(entries):
        yield _Workflow(
            id=_text(entry.get("workflowID")),
            phase=_text(entry.get("phase")),
            cluster_version=_text(entry.get("clusterVersion")),
            target_version=_text(entry.get("targetVersion")),
        )


def _find(workflows: Iterable[_Workflow], workflow_id: str) -> _Workflow | None:
    return next((workflow for workflow in workflows if workflow.id == workflow_id), None)


def _mappings(value: Any) -> Iterator[Mapping[str, Any]]:
    # A stored status is whatever the API server holds; skip what is not ours.
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        yield from (item for item in value if isinstance(item, Mapping))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
