"""The lifecycle Events, derived from stored status -> new status like all others. Pure.

`reconcile` adds these to the workflow Events (`events.py`): they get the same
stored-status fingerprint in their keys, the same deterministic names, are
created before the status write and fall under the same per-poll cap, so each
is posted exactly once across crashes and restarts.

- `PreCheckFailed` (Warning): `PreCheckPassed` turns False (`FatalFindings`,
  `CheckError`) for a pre-check task; names the top findings.
- `PreCheckPassed`: it turns True for a pre-check task.
- `PreCheckExpired`: a pre-check this watch saw end expires.
- `UpgradeScheduled`: an automatic upgrade plan appears.
- `UpgradeRescheduled`: the plan's target or times change.
- `UpgradeUnscheduled`: the plan is no longer listed as pending (it ran, or was
  cancelled).
- `UpgradeSoon` (Warning): `UpgradeScheduled` turns `StartsSoon`, the lead time
  before `notBefore` began.
- `PatchAvailable`: `UpToDate` turns False for a newly suggested patch.
- `BackupCompleted`: `lastBackupTime` moves on (not when first read).
- `LifecycleUnavailable`: a part becomes unavailable (404/403); once, not at
  every retry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cce_upgrade_watch.conditions import ConditionType, find_condition
from cce_upgrade_watch.events import Event, EventReason, EventType
from cce_upgrade_watch.lifecycle_conditions import (
    LifecycleReason,
    describe_findings,
    describe_plan,
    plan_of,
    precheck_verdict,
)
from cce_upgrade_watch.lifecycle_parts import SLOW_INTERVAL, Part, PartState
from cce_upgrade_watch.lifecycle_sections import parse_time

__all__ = ["lifecycle_events"]

#: What each part is, for messages, and the status key it leaves empty.
_PART_TEXT = {
    Part.PRECHECK: ("the pre-check results", "status.preCheck"),
    Part.PLANS: ("the automatic upgrade plans", "status.nextUpgrade"),
    Part.WINDOW: ("the maintenance window", "status.nextUpgrade.maintenanceWindow"),
    Part.VERSIONS: ("the cluster's versions", "status.versions"),
    Part.BACKUPS: ("the control plane backups", "status.lastBackupTime"),
}
#: Plan fields whose change is a reschedule.
_PLAN_TIMES = ("targetVersion", "notBefore", "notAfter", "notBeforeDeadline")


def lifecycle_events(stored: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Event]:
    """The lifecycle Events going from `stored` to `new` status calls for, in
    order; keys without the stored-status fingerprint (`reconcile` adds it)."""
    yield from _unavailable(stored, new)
    yield from _precheck(stored, new)
    yield from _plans(stored, new)
    yield from _patch(stored, new)
    yield from _backup(stored, new)


def _unavailable(stored: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Event]:
    for part in Part:
        before, after = _state(stored, part), _entry(new, part)
        if after.get("state") != PartState.UNAVAILABLE or before == PartState.UNAVAILABLE:
            continue
        what, where = _PART_TEXT[part]
        hours = int(SLOW_INTERVAL.total_seconds() // 3600)
        yield Event(
            EventType.NORMAL,
            EventReason.LIFECYCLE_UNAVAILABLE,
            f"The CCE API does not give {what} for this cluster "
            f"({after.get('message') or 'not available'}); {where} stays empty and the call "
            f"is tried again every {hours}h. Nothing else of the watch is affected.",
            key=f"unavailable:{part}",
        )


def _precheck(stored: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Event]:
    after = find_condition(new.get("conditions"), ConditionType.PRECHECK_PASSED)
    verdict = precheck_verdict(after.get("reason")) if after is not None else None
    if verdict is None:
        return
    before = find_condition(stored.get("conditions"), ConditionType.PRECHECK_PASSED)
    old_verdict = precheck_verdict(before.get("reason")) if before is not None else None
    section = _mapping(new.get("preCheck"))
    task, old_task = section.get("taskID"), _mapping(stored.get("preCheck")).get("taskID")
    if (task, verdict) == (old_task, old_verdict):
        return
    message = str((after or {}).get("message") or "")
    key = f"precheck:{task}:{verdict}"
    if verdict == "failed":
        yield Event(
            EventType.WARNING,
            EventReason.PRECHECK_FAILED,
            message or f"The pre-check failed: {describe_findings(section)}",
            key=key,
        )
    elif verdict == "passed":
        yield Event(EventType.NORMAL, EventReason.PRECHECK_PASSED, message, key=key)
    elif task == old_task and old_verdict is not None:
        # Only a pre-check seen ending expires here; one first read already
        # expired just shows as Expired.
        yield Event(EventType.NORMAL, EventReason.PRECHECK_EXPIRED, message, key=key)


def _plans(stored: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Event]:
    after_state = _entry(new, Part.PLANS).get("state")
    if after_state in (PartState.KNOWN, PartState.EMPTY):
        old = plan_of(stored) if _state(stored, Part.PLANS) == PartState.KNOWN else None
        plan = plan_of(new) if after_state == PartState.KNOWN else None
        yield from _plan_changes(old, plan, stored, new)
    scheduled = find_condition(new.get("conditions"), ConditionType.UPGRADE_SCHEDULED)
    before = find_condition(stored.get("conditions"), ConditionType.UPGRADE_SCHEDULED)
    plan = plan_of(new)
    if (
        plan is not None
        and scheduled is not None
        and scheduled.get("reason") == LifecycleReason.STARTS_SOON
        and not (
            before is not None
            and before.get("reason") == LifecycleReason.STARTS_SOON
            and _same_start(plan_of(stored), plan)
        )
    ):
        backup = new.get("lastBackupTime")
        verdict = find_condition(new.get("conditions"), ConditionType.PRECHECK_PASSED)
        notes = [f"last backup {backup}" if isinstance(backup, str) else ""]
        if verdict is not None:
            notes.append(f"pre-check: {verdict.get('reason')}")
        extra = "; ".join(note for note in notes if note)
        yield Event(
            EventType.WARNING,
            EventReason.UPGRADE_SOON,
            "Starts soon: " + describe_plan(plan, new) + (f" ({extra})" if extra else ""),
            key=f"soon:{_plan_identity(plan)}:{plan.get('notBefore')}",
        )


def _plan_changes(
    old: Mapping[str, Any] | None,
    plan: Mapping[str, Any] | None,
    stored: Mapping[str, Any],
    new: Mapping[str, Any],
) -> Iterator[Event]:
    if old is not None and plan is not None and _plan_identity(old) == _plan_identity(plan):
        if any(old.get(key) != plan.get(key) for key in _PLAN_TIMES):
            yield Event(
                EventType.NORMAL,
                EventReason.UPGRADE_RESCHEDULED,
                f"{describe_plan(plan, new)} (was: not before {old.get('notBefore') or '?'}, "
                f"to {old.get('targetVersion') or '?'})",
                key=f"rescheduled:{_plan_identity(plan)}:{plan.get('notBefore')}:"
                f"{plan.get('targetVersion')}",
            )
        return
    if old is not None:
        yield Event(
            EventType.NORMAL,
            EventReason.UPGRADE_UNSCHEDULED,
            f"No longer planned: {describe_plan(old, stored)}",
            key=f"unscheduled:{_plan_identity(old)}",
        )
    if plan is not None:
        yield Event(
            EventType.NORMAL,
            EventReason.UPGRADE_SCHEDULED,
            describe_plan(plan, new),
            key=f"scheduled:{_plan_identity(plan)}:{plan.get('notBefore')}",
        )


def _same_start(old: Mapping[str, Any] | None, plan: Mapping[str, Any]) -> bool:
    return (
        old is not None
        and _plan_identity(old) == _plan_identity(plan)
        and old.get("notBefore") == plan.get("notBefore")
    )


def _plan_identity(plan: Mapping[str, Any]) -> str:
    """A plan's id, or its target where the API gives none."""
    return str(plan.get("planID") or f"to:{plan.get('targetVersion')}")


def _patch(stored: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Event]:
    after = find_condition(new.get("conditions"), ConditionType.UP_TO_DATE)
    if after is None or after.get("reason") != LifecycleReason.PATCH_AVAILABLE:
        return
    before = find_condition(stored.get("conditions"), ConditionType.UP_TO_DATE)
    versions, old_versions = _mapping(new.get("versions")), _mapping(stored.get("versions"))
    suggested = (versions.get("release"), versions.get("suggestedPatch"))
    if (
        before is not None
        and before.get("reason") == LifecycleReason.PATCH_AVAILABLE
        and (old_versions.get("release"), old_versions.get("suggestedPatch")) == suggested
    ):
        return
    yield Event(
        EventType.NORMAL,
        EventReason.PATCH_AVAILABLE,
        str(after.get("message") or "A newer patch is suggested"),
        key=f"patch:{suggested[0]}:{suggested[1]}",
    )


def _backup(stored: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Event]:
    if _entry(new, Part.BACKUPS).get("state") != PartState.KNOWN:
        return
    after = parse_time(new.get("lastBackupTime"))
    before_state = _state(stored, Part.BACKUPS)
    before = parse_time(stored.get("lastBackupTime"))
    if after is None or before_state is None or before_state == PartState.UNAVAILABLE:
        # First read, or the first since the part could not be read (which left
        # no time stored): a backup taken before is no news, and may already
        # have had its Event before the part became unreadable.
        return
    if before is not None and after <= before:
        return
    yield Event(
        EventType.NORMAL,
        EventReason.BACKUP_COMPLETED,
        f"The control plane was backed up at {new['lastBackupTime']}"
        + (f" (the previous backup: {stored['lastBackupTime']})" if before is not None else ""),
        key=f"backup:{new['lastBackupTime']}",
    )


def _entry(status: Mapping[str, Any], part: Part) -> Mapping[str, Any]:
    lifecycle = _mapping(status.get("lifecycle"))
    return _mapping(lifecycle.get(str(part)))


def _state(status: Mapping[str, Any], part: Part) -> Any:
    return _entry(status, part).get("state")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
