"""Which workflow is current, and the order of the rest: one function for everyone.

`check` and the operator both call `current_first`, so the workflow `check` lists
first is the one the operator mirrors into `.status`, whatever order the API
listed them in and however their timestamps tie.

Current is the newest workflow that is being executed or is stuck: phase
Running or Pending, or (whatever its phase says, unless it is over) a task
queued, running or failed. Only when none is, the newest by creation. A newer
workflow created in Init beside one that is running (or one that failed and
waits for a person) must not hide it: the upgrade that matters is the active one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cce_upgrade_watch.cce.models import Phase, TaskStatus, UpgradeWorkflow

__all__ = ["current_first", "is_active", "newest_first"]

_OVER = frozenset({Phase.SUCCESS, Phase.CANCEL})
_ACTIVE_PHASES = frozenset({Phase.RUNNING, Phase.PENDING})
_ACTIVE_TASKS = frozenset({TaskStatus.QUEUING, TaskStatus.RUNNING, TaskStatus.FAILED})


def newest_first(workflows: Iterable[UpgradeWorkflow]) -> list[UpgradeWorkflow]:
    """Newest creation time first; workflows without one last.

    Ties are broken by the newer update time, then by uid (ascending), so the
    order never depends on the order the API listed them in.
    """
    return sorted(workflows, key=_creation_key)


def is_active(workflow: UpgradeWorkflow) -> bool:
    """Running or Pending, or not over and some task queued, running or failed."""
    phase = workflow.status.phase
    if phase in _ACTIVE_PHASES:
        return True
    if phase in _OVER:
        return False
    return any(point.status in _ACTIVE_TASKS for point in workflow.status.point_statuses)


def current_first(workflows: Iterable[UpgradeWorkflow]) -> list[UpgradeWorkflow]:
    """The current workflow first, then every other one newest first.

    A uid names one workflow: when an answer lists the same uid twice, only the
    first in this order is kept, so the status never holds two entries that the
    Events (which match workflows by uid) could pair up differently next time.
    """
    ordered = newest_first(workflows)
    for index, workflow in enumerate(ordered):
        if is_active(workflow):
            ordered = [workflow, *ordered[:index], *ordered[index + 1 :]]
            break
    return _first_of_each_uid(ordered)


def _first_of_each_uid(workflows: list[UpgradeWorkflow]) -> list[UpgradeWorkflow]:
    seen: set[str] = set()
    kept = []
    for workflow in workflows:
        uid = workflow.metadata.uid
        if uid is not None:
            if uid in seen:
                continue
            seen.add(uid)
        kept.append(workflow)
    return kept


def _creation_key(workflow: UpgradeWorkflow) -> tuple[bool, float, float, str]:
    created = workflow.metadata.creation_timestamp
    updated = workflow.metadata.update_timestamp
    return (
        created is None,
        -_seconds(created),
        -_seconds(updated),
        workflow.metadata.uid or "",
    )


def _seconds(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0
