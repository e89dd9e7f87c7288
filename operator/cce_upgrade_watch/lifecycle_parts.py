"""The names and answers of the lifecycle parts (see `lifecycle_state.py`). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, TypeAlias

from cce_upgrade_watch.spec import WatchSpec

__all__ = [
    "FAILED_RETRY",
    "SLOW_INTERVAL",
    "DueCalls",
    "LifecycleAnswers",
    "Part",
    "PartAnswer",
    "PartFailed",
    "PartNotOffered",
    "PartOutcome",
    "PartState",
    "enabled_parts",
    "part_interval",
]

#: How often versions, backups and the maintenance window are asked, and how
#: often a part the cloud did not offer (404/403) is tried again.
SLOW_INTERVAL = timedelta(hours=6)
#: A part whose call failed otherwise is asked again this much later (or at its
#: own interval, when that is shorter).
FAILED_RETRY = timedelta(minutes=10)


class Part(StrEnum):
    """One read-only lifecycle call and the piece of `.status` it fills."""

    PRECHECK = "preCheck"
    #: The automatic upgrade plans: `status.nextUpgrade` without its window.
    PLANS = "plans"
    #: The maintenance window: `status.nextUpgrade.maintenanceWindow`.
    WINDOW = "maintenanceWindow"
    VERSIONS = "versions"
    BACKUPS = "backups"


class PartState(StrEnum):
    """`status.lifecycle.<part>.state`: what the last answer of a part said."""

    #: The section shows the cloud's answer.
    KNOWN = "Known"
    #: The cloud has nothing (no pre-check, no pending plan, no window, no backup).
    EMPTY = "Empty"
    #: 404 (this region's gateway does not offer the call) or 403 (this identity
    #: may not make it); the section stays empty.
    UNAVAILABLE = "Unavailable"


@dataclass(frozen=True, slots=True)
class PartAnswer:
    """The call worked. `section` is the status section in the shape
    `cce/lifecycle_views.py` (and `check -o json`) produce, None when the cloud
    has nothing:

    - `PRECHECK`: `precheck_summary(task)`;
    - `PLANS`: `plan_summary(select_plan(plans))` (None without a pending plan);
    - `WINDOW`: `window_summary(window, now)` (None when it is empty);
    - `VERSIONS`: `versions_summary(info)` (`patchAvailable` is recomputed here);
    - `BACKUPS`: `format_rfc3339(last_backup_time(snapshots))`, a string.

    The core bounds and filters it again before storing (the CRD's limits).
    """

    section: Any | None


@dataclass(frozen=True, slots=True)
class PartNotOffered:
    """The API gateway answered 404 (this region does not offer the call) or 403
    (this identity may not make it): the part stays empty, with one Normal Event
    (`LifecycleUnavailable`), and is asked again only every `SLOW_INTERVAL`.
    Never makes the watch Stalled or Synced=False. `message`: safe to show
    (`cce.lifecycle.not_available_reason`)."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class PartFailed:
    """Any other failure (5xx, timeout, a body that does not parse): the stored
    section stays as it is and the part is asked again after `FAILED_RETRY`."""

    message: str


PartOutcome: TypeAlias = PartAnswer | PartNotOffered | PartFailed


@dataclass(frozen=True, slots=True)
class LifecycleAnswers:
    """What the lifecycle calls of one poll said: only the parts asked this poll."""

    parts: Mapping[Part, PartOutcome] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DueCalls:
    """The parts to ask in this poll.

    `precheck_task_id` is the PreCheck point's `taskID` of the current workflow
    (`ShowAutopilotPreCheck`); None: take the newest of the task list
    (`select_precheck`), as `check` does.
    """

    parts: frozenset[Part] = frozenset()
    precheck_task_id: str | None = None

    def __bool__(self) -> bool:
        return bool(self.parts)


def enabled_parts(spec: WatchSpec) -> frozenset[Part]:
    """The parts `spec.lifecycle` turns on (`plans` covers the maintenance window)."""
    switches = spec.lifecycle
    parts = set()
    if switches.pre_check:
        parts.add(Part.PRECHECK)
    if switches.plans:
        parts.update((Part.PLANS, Part.WINDOW))
    if switches.versions:
        parts.add(Part.VERSIONS)
    if switches.backups:
        parts.add(Part.BACKUPS)
    return frozenset(parts)


def part_interval(part: Part, spec: WatchSpec) -> timedelta | None:
    """How often a part is asked without a trigger; None: only on triggers."""
    if part == Part.PRECHECK:
        return None
    if part == Part.PLANS:
        return spec.lifecycle.plan_interval
    return SLOW_INTERVAL
