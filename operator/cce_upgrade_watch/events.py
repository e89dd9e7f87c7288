"""Kubernetes Events to post, derived only from stored status -> new status.

Nothing here remembers anything between calls: an Event is due exactly when the
status the operator is about to write differs from the one already stored in a
way the design names. So a restarted operator, which starts again from the
stored status, never posts an Event twice and misses no transition (unless the
status write itself failed, in which case the next poll posts it again).
Nothing here does I/O; the handler posts the events in list order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cce_upgrade_watch.cce.models import ACTIVE_PHASES, Phase, TaskStatus
from cce_upgrade_watch.conditions import ConditionType, find_condition

__all__ = [
    "MAX_EVENT_MESSAGE",
    "Event",
    "EventReason",
    "EventType",
    "events_between",
]

#: events.k8s.io/v1 caps `note` at 1 kB; stay under it for either Event API.
MAX_EVENT_MESSAGE = 1000


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventReason(StrEnum):
    WORKFLOW_DISCOVERED = "WorkflowDiscovered"
    PHASE_CHANGED = "PhaseChanged"
    TASK_STATUS_CHANGED = "TaskStatusChanged"
    POLL_FAILED = "PollFailed"
    POLL_RECOVERED = "PollRecovered"


@dataclass(frozen=True, slots=True)
class Event:
    """One Event for the watched object."""

    type: EventType
    reason: EventReason
    message: str

    def __post_init__(self) -> None:
        if len(self.message) > MAX_EVENT_MESSAGE:
            object.__setattr__(self, "message", self.message[: MAX_EVENT_MESSAGE - 3] + "...")


_WARNING_PHASES = frozenset({Phase.PENDING, Phase.CANCEL})
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
) -> list[Event]:
    """The Events that going from `stored` to `new` status calls for.

    `observed_history` is every older workflow of this poll in history-entry
    shape, before `historyLimit` cut the list: it lets a PhaseChanged for the
    workflow that was current be reported even when the history keeps none.
    It defaults to `new["history"]`.
    """
    stored = stored if isinstance(stored, Mapping) else {}
    events = list(_poll_events(stored, new))
    events.extend(_workflow_events(stored, new, observed_history))
    return events


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
        )
    elif after.get("status") == "True" and was_failing:
        yield Event(
            EventType.NORMAL,
            EventReason.POLL_RECOVERED,
            f"Polling the CCE API works again (it failed with {failed_with})",
        )


def _workflow_events(
    stored: Mapping[str, Any],
    new: Mapping[str, Any],
    observed_history: Sequence[Mapping[str, Any]] | None,
) -> Iterator[Event]:
    current = _current(new)
    if current is None:
        return
    previous = _current(stored)
    if previous is not None and previous.id == current.id:
        yield from _changes_of_one_workflow(previous, current)
        return

    # A different workflow is current now.
    if previous is not None and previous.id is not None:
        history = observed_history if observed_history is not None else new.get("history")
        later = _find(_history(history), previous.id)
        if later is not None and later.phase is not None and later.phase != previous.phase:
            yield _phase_changed(previous, later)
    known = _find(_history(stored.get("history")), current.id) if current.id else None
    if known is None:
        yield _discovered(current)
    elif current.phase is not None and current.phase != known.phase:
        # Seen before only as history (a newer one went away): no task data to compare.
        yield _phase_changed(known, current)


def _changes_of_one_workflow(previous: _Workflow, current: _Workflow) -> Iterator[Event]:
    phase_event = None
    if current.phase is not None and current.phase != previous.phase:
        phase_event = _phase_changed(previous, current)
    task_events = list(_task_changes(previous.points, current.points))
    # Read in order of cause: a start is announced before its first task, and
    # the last task finishes before the workflow does.
    if phase_event is not None and current.phase in ACTIVE_PHASES:
        yield phase_event
        phase_event = None
    yield from task_events
    if phase_event is not None:
        yield phase_event


def _task_changes(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
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
        yield Event(
            EventType.WARNING if status == TaskStatus.FAILED else EventType.NORMAL,
            EventReason.TASK_STATUS_CHANGED,
            f"{_task_name(point)}: {old or _NONE} -> {status}",
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
    )


def _discovered(workflow: _Workflow) -> Event:
    name = f"upgrade workflow {workflow.id}" if workflow.id else "an upgrade workflow"
    return Event(
        EventType.NORMAL,
        EventReason.WORKFLOW_DISCOVERED,
        f"Found {name}: {workflow.versions()}, phase {workflow.phase or 'unknown'}",
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
