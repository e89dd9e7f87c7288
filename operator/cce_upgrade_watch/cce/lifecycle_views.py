"""What the lifecycle answers mean, as plain dicts in the shape of the status. Pure.

One derivation serves `check -o json` and (later) the operator's status, like
`views.py` for workflows: camelCase names, timestamps in RFC 3339 UTC, absent
fields left out (never `null`).

- `precheck_summary`: a pre-check task as a to-do list: counts of findings by
  level and the findings themselves (at most `MAX_FINDINGS`, Fatal first, then
  Warning, Info, other levels; Exception before Risk; otherwise in the API's
  order), each with its risk source in short.
- `next_window_start`: the next start of a weekly maintenance window, in UTC.
- `select_plan` / `plan_summary`: the automatic upgrade plan still to come.
- `versions_summary`, `patch_available`, `last_backup_time`.
- `plan_section`, `window_section`, `next_upgrade_section`, `versions_section`,
  `backup_section`: the status sections as `check` and the operator both show
  them, from the answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from cce_upgrade_watch.cce.lifecycle_models import (
    MaintenanceWindow,
    NodeInfo,
    PreCheckItem,
    PreCheckTask,
    SnapshotTaskList,
    UpgradeInfo,
    UpgradePlan,
)
from cce_upgrade_watch.cce.timestamps import format_rfc3339

#: Findings kept in a pre-check summary.
MAX_FINDINGS = 20
#: Entries kept per kind of risk source of one finding.
MAX_RISKS = 5

LEVEL_ORDER = {"Fatal": 0, "Warning": 1, "Info": 2}
KIND_ORDER = {"Exception": 0, "Risk": 1}
#: Item phases that are not findings: the check passed, or has not ended yet.
NOT_FINDINGS = frozenset({"Success", "Init", "Running"})
#: Plan phases after which a plan is no longer to come (compared case-insensitively).
PLAN_DONE_PHASES = frozenset(
    {"success", "succeeded", "failed", "cancel", "cancelled", "canceled", "expired", "deleted"}
)
#: Snapshot task and item phases that mean "backed up".
BACKUP_DONE = "Success"
BACKUP_TYPE = "master-backup"

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_START_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value == [] or value == {}:
        return
    target[key] = format_rfc3339(value) if isinstance(value, datetime) else value


# -- pre-check ------------------------------------------------------------------------


def _items(task: PreCheckTask) -> Iterator[tuple[PreCheckItem, NodeInfo | None]]:
    """Every item of the task with the node it was checked on."""
    status = task.status
    for item in status.cluster_check_status.items_status:
        yield item, None
    for item in status.addon_check_status.items_status:
        yield item, None
    for stage in status.node_check_status.node_stage_status:
        for item in stage.items_status:
            yield item, stage.node_info


def is_finding(item: PreCheckItem) -> bool:
    """An item that did not pass: failed, or in a phase this code does not know."""
    return item.phase not in NOT_FINDINGS


def _risk_source(item: PreCheckItem, node: NodeInfo | None) -> dict[str, Any]:
    source = item.risk_source
    result: dict[str, Any] = {}
    apis = []
    for risk in source.deprecated_api_risks[:MAX_RISKS]:
        entry: dict[str, Any] = {}
        _put(entry, "url", risk.url)
        _put(entry, "userAgent", risk.user_agent)
        if entry:
            apis.append(entry)
    _put(result, "deprecatedAPIs", apis)
    # The node an item was checked on, by name, and the nodes its risks name by id
    # (the same node's id is not repeated).
    nodes = [node.name or node.uid] if node is not None else []
    known = {node.name, node.uid} if node is not None else set()
    nodes += [risk.node_id for risk in source.node_risks if risk.node_id not in known]
    nodes = [name for name in nodes if name]
    _put(result, "nodes", list(dict.fromkeys(nodes))[:MAX_RISKS])
    addons = [risk.addon_template_name or risk.alias for risk in source.addon_risks]
    _put(result, "addons", list(dict.fromkeys(a for a in addons if a))[:MAX_RISKS])
    configurations = [
        " ".join(part for part in (risk.package, risk.field) if part)
        for risk in source.configuration_risks
    ]
    _put(result, "configurations", [c for c in configurations if c][:MAX_RISKS])
    return result


def _finding(item: PreCheckItem, node: NodeInfo | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    _put(result, "name", item.name)
    _put(result, "kind", item.kind)
    _put(result, "group", item.group)
    _put(result, "level", item.level)
    _put(result, "phase", item.phase)
    _put(result, "message", item.message)
    _put(result, "errorCodes", list(item.error_codes))
    _put(result, "riskSource", _risk_source(item, node))
    return result


def precheck_summary(task: PreCheckTask, *, limit: int = MAX_FINDINGS) -> dict[str, Any]:
    """`taskID`, `phase`, versions, `expireTime`, `message`, the counts of findings by
    level (`fatal`, `warning`, `info`; other levels only in `findings`), the
    findings (at most `limit`, most severe first) and `findingsOmitted`."""
    found = [(item, node) for item, node in _items(task) if is_finding(item)]
    order = sorted(
        range(len(found)),
        key=lambda i: (
            LEVEL_ORDER.get(found[i][0].level or "", len(LEVEL_ORDER)),
            KIND_ORDER.get(found[i][0].kind or "", len(KIND_ORDER)),
            i,
        ),
    )
    result: dict[str, Any] = {}
    _put(result, "taskID", task.metadata.uid)
    _put(result, "phase", task.status.phase)
    _put(result, "clusterVersion", task.spec.cluster_version)
    _put(result, "targetVersion", task.spec.target_version)
    _put(result, "createdAt", task.metadata.creation_timestamp)
    _put(result, "expireTime", task.status.expire_time_stamp)
    _put(result, "message", task.status.message)
    for level in LEVEL_ORDER:
        result[level.lower()] = sum(1 for item, _ in found if item.level == level)
    result["findings"] = [_finding(*found[i]) for i in order[:limit]]
    if len(found) > limit:
        result["findingsOmitted"] = len(found) - limit
    return result


def select_precheck(tasks: Iterable[PreCheckTask]) -> PreCheckTask | None:
    """The newest pre-check task (by creation, then update time; undated ones last)."""

    def key(task: PreCheckTask) -> tuple[bool, float, float]:
        created = task.metadata.creation_timestamp
        updated = task.metadata.update_timestamp
        return (
            created is None,
            -created.timestamp() if created else 0.0,
            -updated.timestamp() if updated else 0.0,
        )

    ordered = sorted(tasks, key=key)
    return ordered[0] if ordered else None


# -- maintenance window -----------------------------------------------------------------


def window_days(weekly_period: str | None) -> frozenset[int] | None:
    """Weekdays (Monday 0) of `"Friday,Saturday"`; full or 3-letter names, any case.
    None when empty or when any name is unknown."""
    if not weekly_period:
        return None
    days: set[int] = set()
    for raw in weekly_period.split(","):
        name = raw.strip().lower()
        matches = [i for i, day in enumerate(_DAYS) if name in (day, day[:3])]
        if not matches:
            return None
        days.add(matches[0])
    return frozenset(days) or None


def window_start_time(start_time: str | None) -> time | None:
    """`HH:MM` or `HH:MM:SS` (UTC); None when unreadable."""
    match = _START_TIME.match(start_time.strip()) if start_time else None
    if not match:
        return None
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return time(hours, minutes, seconds, tzinfo=UTC)


def next_window_start(window: MaintenanceWindow, now: datetime) -> datetime | None:
    """The first start of the window at or after `now` (UTC), or None when the
    window's days or start time cannot be read."""
    days = window_days(window.weekly_period)
    start = window_start_time(window.start_time)
    if days is None or start is None:
        return None
    now = now.astimezone(UTC)
    for offset in range(8):
        day = (now + timedelta(days=offset)).date()
        candidate = datetime.combine(day, start)
        if candidate.weekday() in days and candidate >= now:
            return candidate
    return None  # pragma: no cover - every weekday comes within 8 days


def window_summary(window: MaintenanceWindow, now: datetime) -> dict[str, Any]:
    """`weeklyPeriod`, `startTime`, `durationHours`, `scope` and `nextStart`."""
    result: dict[str, Any] = {}
    _put(result, "weeklyPeriod", window.weekly_period)
    _put(result, "startTime", window.start_time)
    _put(result, "durationHours", window.duration_hours)
    _put(result, "scope", window.upgrade_scope)
    _put(result, "nextStart", next_window_start(window, now))
    return result


# -- upgrade plans ------------------------------------------------------------------------


def plan_is_pending(plan: UpgradePlan) -> bool:
    """A plan still to come or under way (its phase is not a known final one)."""
    return (plan.status.phase or "").lower() not in PLAN_DONE_PHASES


def select_plan(plans: Sequence[UpgradePlan]) -> UpgradePlan | None:
    """The pending plan that starts first (undated ones after dated ones)."""
    pending = [plan for plan in plans if plan_is_pending(plan)]
    pending.sort(
        key=lambda plan: (
            plan.spec.not_before is None,
            plan.spec.not_before.timestamp() if plan.spec.not_before else 0.0,
        )
    )
    return pending[0] if pending else None


def plan_summary(plan: UpgradePlan) -> dict[str, Any]:
    """`targetVersion`, `clusterVersion`, `notBefore`, `notAfter`, `notBeforeDeadline`, `phase`."""
    result: dict[str, Any] = {}
    _put(result, "planID", plan.metadata.uid)
    _put(result, "targetVersion", plan.spec.target_version)
    _put(result, "clusterVersion", plan.spec.cluster_version)
    _put(result, "notBefore", plan.spec.not_before)
    _put(result, "notAfter", plan.spec.not_after)
    _put(result, "notBeforeDeadline", plan.spec.not_before_deadline)
    _put(result, "phase", plan.status.phase)
    return result


# -- versions and backups -------------------------------------------------------------------


def patch_available(info: UpgradeInfo) -> bool:
    """A patch is suggested that the cluster does not run."""
    version = info.spec.version_info
    return bool(version.suggest_patch) and version.suggest_patch != version.patch


def versions_summary(info: UpgradeInfo) -> dict[str, Any]:
    """`release`, `patch`, `suggestedPatch`, `targetVersions`, and the last upgrade."""
    version = info.spec.version_info
    result: dict[str, Any] = {}
    _put(result, "release", version.release)
    _put(result, "patch", version.patch)
    _put(result, "suggestedPatch", version.suggest_patch)
    _put(result, "targetVersions", list(version.target_versions[:MAX_FINDINGS]))
    last = info.spec.last_upgrade_info
    last_upgrade: dict[str, Any] = {}
    _put(last_upgrade, "phase", last.phase)
    _put(last_upgrade, "progress", last.progress)
    _put(last_upgrade, "completionTime", last.completion_time)
    _put(result, "lastUpgrade", last_upgrade)
    return result


def last_backup_time(snapshots: SnapshotTaskList) -> datetime | None:
    """The list's `latestBackupTime`, else the newest end of a successful
    master-backup (an item's update time, or its task's completion time)."""
    if snapshots.status.latest_backup_time is not None:
        return snapshots.status.latest_backup_time
    times: list[datetime] = []
    for task in snapshots.items:
        backups = [item for item in task.spec.items if item.type == BACKUP_TYPE]
        for item in backups:
            if item.status == BACKUP_DONE and item.update_timestamp is not None:
                times.append(item.update_timestamp)
        if (
            not backups
            and task.status.phase == BACKUP_DONE
            and task.status.completion_time is not None
        ):
            times.append(task.status.completion_time)
    return max(times, default=None)


# -- the sections, as `check -o json` and the status show them --------------------------------


def plan_section(plans: Sequence[UpgradePlan]) -> dict[str, Any] | None:
    """The plan still to come (`plan_summary`), or None."""
    plan = select_plan(plans)
    return plan_summary(plan) if plan is not None else None


def window_section(window: MaintenanceWindow, now: datetime) -> dict[str, Any] | None:
    """`window_summary`, or None when no window is set."""
    return window_summary(window, now) or None


def next_upgrade_section(
    plans: Sequence[UpgradePlan] | None, window: MaintenanceWindow | None, now: datetime
) -> dict[str, Any]:
    """`nextUpgrade`: the plan still to come (`plan_section`) with the maintenance
    window under `maintenanceWindow`; empty when neither is known or set."""
    section: dict[str, Any] = dict(plan_section(plans) or {}) if plans is not None else {}
    if window is not None:
        _put(section, "maintenanceWindow", window_section(window, now))
    return section


def versions_section(info: UpgradeInfo) -> dict[str, Any]:
    """`versions`: `versions_summary` and `patchAvailable`; empty when nothing is known."""
    section = versions_summary(info)
    if section:
        section["patchAvailable"] = patch_available(info)
    return section


def backup_section(snapshots: SnapshotTaskList) -> str | None:
    """`lastBackupTime` in RFC 3339 UTC, or None when no backup is known."""
    backed_up = last_backup_time(snapshots)
    return format_rfc3339(backed_up) if backed_up is not None else None
