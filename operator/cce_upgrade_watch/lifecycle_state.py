"""The lifecycle parts of a watch: when to ask for them, and what their answers mean.

Pure: no I/O, no kopf, no HTTP. Around an upgrade workflow, read-only calls tell
what comes before and after it (`cce/lifecycle.py`). Each *part* is one call
and one piece of `.status`:

| part                | call                              | status                              |
| ------------------- | --------------------------------- | ----------------------------------- |
| `preCheck`          | show (or list) the pre-check task | `preCheck`                          |
| `plans`             | list the automatic upgrade plans  | `nextUpgrade` (the plan's fields)   |
| `maintenanceWindow` | show the maintenance window       | `nextUpgrade.maintenanceWindow`     |
| `versions`          | show the upgrade info             | `versions`                          |
| `backups`           | list the master snapshot tasks    | `lastBackupTime`                    |

`status.lifecycle.<part>` says what the last answer of each part was (`Known`,
`Empty`: the cloud has none, `Unavailable`: 404/403, with the reason), so an
empty section is never a riddle, and a restarted operator knows which parts it
has asked before.

The poll loop (one `LifecycleSchedule` per object) asks `due()` which parts to
call in this poll, makes those calls, hands the answers to `reconcile(...,
lifecycle=...)` and then to `record()`. Nothing else is remembered between
polls: everything that matters is in the stored status.

**Budget.** A part is asked when it can tell something new, not every poll:

- `preCheck`: when the current workflow's PreCheck point changes (taskID or
  status), and at the first poll when the stored status has no pre-check;
- `plans`: every `spec.lifecycle.planInterval` (default 2h), and at once when a
  workflow ends;
- `maintenanceWindow`: every `SLOW_INTERVAL` (6h), and at once when a workflow
  ends (a window is a setting people rarely change; asking it with every plan
  call would double the plans' cost);
- `versions`: every `SLOW_INTERVAL`, and at once when a workflow ends;
- `backups`: every `SLOW_INTERVAL`, and when the Snapshot point ends (Success
  or Failed).

A part that failed (anything but 404/403) is asked again after
`FAILED_RETRY` (or its interval, when shorter); one that is not offered
(404/403) only every `SLOW_INTERVAL`. After a restart, a part the stored status
already shows is first asked at an offset within its interval derived from the
object (its uid) and the part, so 10,000 watches do not all ask at once; a
part the stored status lacks is asked at the first poll. A part turned off
(`spec.lifecycle.<part>: false`; `plans: false` covers the window too) is never
asked and its section is removed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cce_upgrade_watch.cce.lifecycle_models import MaintenanceWindow
from cce_upgrade_watch.cce.lifecycle_views import next_window_start
from cce_upgrade_watch.cce.models import Phase, TaskStatus, UpgradeWorkflow
from cce_upgrade_watch.cce.timestamps import format_rfc3339
from cce_upgrade_watch.conditions import ConditionState
from cce_upgrade_watch.lifecycle_conditions import derive_lifecycle_conditions, time_transitions
from cce_upgrade_watch.lifecycle_parts import (
    FAILED_RETRY,
    SLOW_INTERVAL,
    DueCalls,
    LifecycleAnswers,
    Part,
    PartAnswer,
    PartFailed,
    PartNotOffered,
    PartOutcome,
    PartState,
    enabled_parts,
    part_interval,
)
from cce_upgrade_watch.lifecycle_sections import SECTION_SCHEMAS, STATE_SCHEMA, clean, parse_time
from cce_upgrade_watch.spec import WatchSpec

__all__ = [
    "FAILED_RETRY",
    "LIFECYCLE_KEYS",
    "SLOW_INTERVAL",
    "DueCalls",
    "LifecycleAnswers",
    "LifecycleSchedule",
    "LifecycleStatus",
    "Part",
    "PartAnswer",
    "PartFailed",
    "PartNotOffered",
    "PartOutcome",
    "PartState",
    "enabled_parts",
    "lifecycle_wakeup",
    "part_interval",
    "reconcile_lifecycle",
]

# -------------------------------------------------------------- the schedule

_FINAL_TASK = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED})
_ACTIVE = frozenset({Phase.INIT, Phase.RUNNING, Phase.PENDING})


@dataclass(frozen=True, slots=True)
class _View:
    """What the schedule's triggers compare between two polls."""

    workflow_id: str | None = None
    phase: str | None = None
    precheck: tuple[str | None, str | None] | None = None  # (taskID, status)
    snapshot: tuple[str | None, str | None] | None = None

    @classmethod
    def of_workflows(cls, workflows: Sequence[UpgradeWorkflow]) -> _View:
        if not workflows:
            return cls()
        current = workflows[0]
        points = [(p.task_type, p.task_id, p.status) for p in current.status.point_statuses]
        return cls(
            workflow_id=current.metadata.uid,
            phase=current.status.phase,
            precheck=_point(points, "PreCheck"),
            snapshot=_point(points, "Snapshot"),
        )

    @classmethod
    def of_status(cls, status: Mapping[str, Any]) -> _View:
        raw = status.get("pointStatuses")
        points = [
            (_text(p.get("taskType")), _text(p.get("taskID")), _text(p.get("status")))
            for p in (raw if isinstance(raw, list) else [])
            if isinstance(p, Mapping)
        ]
        return cls(
            workflow_id=_text(status.get("workflowID")),
            phase=_text(status.get("phase")),
            precheck=_point(points, "PreCheck"),
            snapshot=_point(points, "Snapshot"),
        )


def _point(
    points: Sequence[tuple[str | None, str | None, str | None]], task_type: str
) -> tuple[str | None, str | None] | None:
    for kind, task_id, status in points:
        if kind == task_type:
            return (task_id, status)
    return None


class LifecycleSchedule:
    """When each lifecycle part of one watch is due (one per poll loop, in memory).

    `seed` (the object's uid) spreads the first periodic calls after a restart
    over each part's interval, the same way for the same object every time.
    Every method takes `now` (timezone-aware, or naive UTC).
    """

    def __init__(self, seed: str = "") -> None:
        self._seed = seed
        self._spec: WatchSpec | None = None
        self._started = False
        self._watched: Any = None
        self._view = _View()
        #: part -> when it is due next (absent: only on a trigger)
        self._due_at: dict[Part, datetime] = {}
        #: parts whose last answer was 404/403: no trigger asks them, only time
        self._not_offered: set[Part] = set()
        #: parts answered since the start (their answer may not be stored yet)
        self._answered: set[Part] = set()
        #: `next_due`'s answer since the last `due` or `record` (asked every poll)
        self._next_due: tuple[datetime | None] | None = None

    def due(
        self,
        spec: WatchSpec,
        workflows: Sequence[UpgradeWorkflow] | None,
        stored_status: Mapping[str, Any] | None,
        now: datetime,
    ) -> DueCalls:
        """The parts to ask in this poll, given its workflow answer (current first,
        as `cce.ordering.current_first` returns them; None when the workflow poll
        failed: only what is due by time, no trigger) and the stored status."""
        now = _utc(now)
        self._next_due = None
        stored = stored_status if isinstance(stored_status, Mapping) else {}
        watched = _watched(spec)
        if _stored_watched(stored) not in (None, watched):
            stored = {}  # another cluster: nothing stored describes this one
        if self._started and watched != self._watched:
            self._started = False
        self._spec = spec
        enabled = enabled_parts(spec)
        view = _View.of_workflows(workflows) if workflows is not None else None
        starting = not self._started
        if starting:
            self._start(spec, stored, now)
            self._view = _View.of_status(stored) if stored else (view or _View())
            self._started, self._watched = True, watched
        previous = self._view
        if view is not None:
            self._view = view

        for part in Part:
            if part not in enabled:
                self._due_at.pop(part, None)
                self._not_offered.discard(part)
                self._answered.discard(part)
            elif (
                part not in self._due_at
                and part not in self._answered
                and _stored_state(stored, part) is None
            ):
                # Turned on again, or its answer is not stored yet: ask now.
                self._due_at[part] = now
        triggered = (
            _triggered(previous, view, stored if starting else None) if view is not None else set()
        )
        for part in triggered:
            if part in enabled and part not in self._not_offered:
                self._due_at[part] = min(self._due_at.get(part, now), now)

        parts = frozenset(
            part for part, at in self._due_at.items() if part in enabled and at <= now
        )
        precheck = self._view.precheck
        precheck_id = precheck[0] if precheck else None
        return DueCalls(parts, precheck_id if Part.PRECHECK in parts else None)

    def record(self, answers: LifecycleAnswers, now: datetime) -> None:
        """Note what the calls of this poll said (after `due`): sets each asked
        part's next time. A part asked but left out of `answers` stays due."""
        now = _utc(now)
        self._next_due = None
        spec = self._spec
        if spec is None:
            return
        for part, outcome in answers.parts.items():
            interval = part_interval(part, spec)
            if not isinstance(outcome, PartFailed):
                self._answered.add(part)
            if isinstance(outcome, PartAnswer):
                self._not_offered.discard(part)
                if interval is None:
                    self._due_at.pop(part, None)
                else:
                    self._due_at[part] = now + interval
            elif isinstance(outcome, PartNotOffered):
                self._not_offered.add(part)
                self._due_at[part] = now + SLOW_INTERVAL
            else:
                retry = FAILED_RETRY if interval is None else min(FAILED_RETRY, interval)
                self._due_at[part] = now + retry

    def next_due(self) -> datetime | None:
        """The earliest time a part falls due without a trigger (None: none
        will); the poll loop may cap its sleep at it."""
        if self._spec is None:
            return None
        if self._next_due is None:
            enabled = enabled_parts(self._spec)
            times = [at for part, at in self._due_at.items() if part in enabled]
            self._next_due = (min(times, default=None),)
        return self._next_due[0]

    def _start(self, spec: WatchSpec, stored: Mapping[str, Any], now: datetime) -> None:
        """First call (a new object, a restart, another cluster): parts the stored
        status shows are first asked at an offset within their interval."""
        self._due_at.clear()
        self._not_offered.clear()
        self._answered.clear()
        for part in enabled_parts(spec):
            state = _stored_state(stored, part)
            if state is None:
                self._due_at[part] = now
                continue
            interval = part_interval(part, spec)
            if state == PartState.UNAVAILABLE:
                self._not_offered.add(part)
                interval = SLOW_INTERVAL
            if interval is not None:
                self._due_at[part] = now + self._offset(part, interval)

    def _offset(self, part: Part, interval: timedelta) -> timedelta:
        digest = hashlib.sha256(f"{self._seed}\n{part}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return timedelta(seconds=round(interval.total_seconds() * fraction))


def _triggered(previous: _View, view: _View, stored: Mapping[str, Any] | None) -> set[Part]:
    """The parts the change from `previous` to `view` makes due. `stored`, only
    at the first poll: a stored pre-check of another task than the workflow
    names is read again. Only then: the task the calls find may well differ
    from the one the point names (`check` falls back to the newest of the
    list), and asking again at every poll would never end."""
    parts: set[Part] = set()
    if view.precheck is not None and view.precheck != previous.precheck:
        parts.add(Part.PRECHECK)
    elif stored is not None and view.precheck is not None and view.precheck[0]:
        section = stored.get("preCheck")
        if isinstance(section, Mapping) and section.get("taskID") not in (None, view.precheck[0]):
            parts.add(Part.PRECHECK)
    if (
        view.snapshot is not None
        and view.snapshot != previous.snapshot
        and view.snapshot[1] in _FINAL_TASK
    ):
        parts.add(Part.BACKUPS)
    ended = previous.phase in _ACTIVE and (
        view.workflow_id != previous.workflow_id or view.phase not in _ACTIVE
    )
    if ended:
        parts.update((Part.PLANS, Part.WINDOW, Part.VERSIONS))
    return parts


# ------------------------------------------------------------- the core


@dataclass(frozen=True, slots=True)
class LifecycleStatus:
    """The lifecycle keys of the new status (a key left out is removed) and the
    lifecycle conditions; `reconcile` adds them to the workflow's."""

    sections: dict[str, Any]
    conditions: list[ConditionState]


#: The `.status` keys the lifecycle parts own.
LIFECYCLE_KEYS = ("preCheck", "nextUpgrade", "versions", "lastBackupTime", "lifecycle")


def reconcile_lifecycle(
    stored: Mapping[str, Any],
    spec: WatchSpec,
    answers: LifecycleAnswers | None,
    now: datetime,
) -> LifecycleStatus:
    """The lifecycle sections and conditions from the stored ones, this poll's
    answers (None: no lifecycle call this poll) and `now` (for the time-driven
    ones). Called by `reconcile` on every poll; the Events come from the
    difference, like all others (`lifecycle_events.py`).

    An answer replaces its part's section (`Known`, or removed when `Empty`);
    a 404/403 empties it (`Unavailable`, with the reason); a failure keeps it.
    A part turned off loses its section, its state and its condition.
    """
    now = _utc(now)
    enabled = enabled_parts(spec)
    values = {part: _stored_section(stored, part) for part in Part}
    states = {part: _stored_entry(stored, part) for part in Part}
    for part, outcome in (answers.parts if answers is not None else {}).items():
        if isinstance(outcome, PartAnswer):
            values[part] = clean(outcome.section, SECTION_SCHEMAS[part])
            state = PartState.KNOWN if values[part] is not None else PartState.EMPTY
            states[part] = {"state": str(state)}
        elif isinstance(outcome, PartNotOffered):
            values[part] = None
            reason = _without_request_id(" ".join(str(outcome.message).split()))
            if f"HTTP {outcome.code}" not in reason:
                reason = f"HTTP {outcome.code}: {reason}".rstrip(": ")
            states[part] = clean(
                {"state": str(PartState.UNAVAILABLE), "message": reason}, STATE_SCHEMA
            )
    for part in Part:
        entry = states[part]
        known = entry is not None and entry.get("state") == PartState.KNOWN
        if part not in enabled or (known and values[part] is None):
            # Off; or Known without a usable section (junk stored): ask again.
            values[part], states[part] = None, None
        elif not known:
            values[part] = None  # Empty or Unavailable: nothing to show
    window = values[Part.WINDOW]
    if isinstance(window, dict):
        values[Part.WINDOW] = _window_moved_on(window, now)
    versions = values[Part.VERSIONS]
    if isinstance(versions, dict):
        suggested = versions.get("suggestedPatch")
        versions["patchAvailable"] = bool(suggested) and suggested != versions.get("patch")

    sections: dict[str, Any] = {}
    if values[Part.PRECHECK] is not None:
        sections["preCheck"] = values[Part.PRECHECK]
    upcoming = dict(values[Part.PLANS] or {})
    if values[Part.WINDOW] is not None:
        upcoming["maintenanceWindow"] = values[Part.WINDOW]
    if upcoming:
        sections["nextUpgrade"] = upcoming
    if values[Part.VERSIONS] is not None:
        sections["versions"] = values[Part.VERSIONS]
    if values[Part.BACKUPS] is not None:
        sections["lastBackupTime"] = values[Part.BACKUPS]
    lifecycle = {str(part): entry for part, entry in states.items() if entry is not None}
    if lifecycle:
        sections["lifecycle"] = lifecycle
    return LifecycleStatus(sections, derive_lifecycle_conditions(sections, spec, now))


# What differs on every try; stored, it would make every retry a status write.
_REQUEST_ID = re.compile(r",?\s*\[?request id [^),\]]*\]?", re.IGNORECASE)


def _without_request_id(message: str) -> str:
    return _REQUEST_ID.sub("", message)


def _stored_section(stored: Mapping[str, Any], part: Part) -> Any:
    if part == Part.BACKUPS:
        raw: Any = stored.get("lastBackupTime")
    elif part == Part.PRECHECK:
        raw = stored.get("preCheck")
    elif part == Part.VERSIONS:
        raw = stored.get("versions")
    else:
        upcoming = stored.get("nextUpgrade")
        upcoming = upcoming if isinstance(upcoming, Mapping) else {}
        if part == Part.WINDOW:
            raw = upcoming.get("maintenanceWindow")
        else:
            raw = {k: v for k, v in upcoming.items() if k != "maintenanceWindow"}
    return clean(raw, SECTION_SCHEMAS[part])


def _stored_entry(stored: Mapping[str, Any], part: Part) -> dict[str, Any] | None:
    lifecycle = stored.get("lifecycle")
    entry = clean(
        lifecycle.get(str(part)) if isinstance(lifecycle, Mapping) else None, STATE_SCHEMA
    )
    if not isinstance(entry, dict) or entry.get("state") not in set(PartState):
        return None
    return entry


def _window_moved_on(window: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The window with its `nextStart` moved to the next start once it passed."""
    start = parse_time(window.get("nextStart"))
    if start is not None and start >= now:
        return window
    moved = dict(window)
    moved.pop("nextStart", None)
    following = next_window_start(
        MaintenanceWindow(
            weekly_period=window.get("weeklyPeriod"), start_time=window.get("startTime")
        ),
        now,
    )
    if following is not None:
        moved["nextStart"] = format_rfc3339(following)
    return moved


# ------------------------------------------------------------- time-driven


def lifecycle_wakeup(status: Mapping[str, Any] | None, spec: WatchSpec) -> datetime | None:
    """The next moment a time-driven transition of this status falls due (an
    upgrade entering the lead time, a pre-check expiring, a maintenance window
    starting), or None. The poll loop sleeps no longer than until then, and
    runs the core (not its unchanged-answer shortcut) once it has passed."""
    return min(time_transitions(status, spec), default=None)


# ------------------------------------------------------------------ helpers


def _stored_state(stored: Mapping[str, Any], part: Part) -> PartState | None:
    lifecycle = stored.get("lifecycle")
    entry = lifecycle.get(str(part)) if isinstance(lifecycle, Mapping) else None
    state = entry.get("state") if isinstance(entry, Mapping) else None
    try:
        return PartState(state) if isinstance(state, str) else None
    except ValueError:
        return None


def _watched(spec: WatchSpec) -> dict[str, str]:
    where = {"endpoint": spec.endpoint} if spec.endpoint else {"region": str(spec.region)}
    return {**where, "projectId": spec.project_id, "clusterId": spec.cluster_id}


def _stored_watched(stored: Mapping[str, Any]) -> Any:
    watched = stored.get("watched")
    return dict(watched) if isinstance(watched, Mapping) else None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
