"""Builders for the lifecycle tests: sections in the shape `cce/lifecycle_views.py`
produces, workflows with PreCheck and Snapshot points, and a poll runner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cce_upgrade_watch.cce.models import UpgradeWorkflow, parse_workflow_list
from cce_upgrade_watch.events import Event
from cce_upgrade_watch.lifecycle_state import (
    LifecycleAnswers,
    Part,
    PartAnswer,
    PartFailed,
    PartNotOffered,
    PartOutcome,
)
from cce_upgrade_watch.reconcile import (
    PollOutcome,
    ReconcileResult,
    WorkflowsFetched,
    reconcile,
    status_patch,
)
from cce_upgrade_watch.spec import WatchSpec

from ._support import as_stored, make_spec, parse_now

T0 = parse_now("2026-03-02T08:00:00Z")  # a Monday


def finding(name: str, level: str = "Fatal", kind: str = "Exception", **more: Any) -> Any:
    return {
        "name": name,
        "kind": kind,
        "group": "MasterCheck",
        "level": level,
        "phase": "Failed",
        **more,
    }


def precheck(
    task_id: str = "pc-1",
    phase: str = "Failed",
    expire: str | None = "2026-03-03T08:00:00Z",
    findings: list[Any] | None = None,
) -> dict[str, Any]:
    found = findings if findings is not None else []
    section: dict[str, Any] = {
        "taskID": task_id,
        "phase": phase,
        "clusterVersion": "v1.28.3-r0",
        "targetVersion": "v1.29.1-r0",
        "fatal": sum(1 for f in found if f.get("level") == "Fatal"),
        "warning": sum(1 for f in found if f.get("level") == "Warning"),
        "info": sum(1 for f in found if f.get("level") == "Info"),
        "findings": found,
    }
    if expire is not None:
        section["expireTime"] = expire
    return section


def plan(
    not_before: str = "2026-03-10T02:00:00Z",
    target: str = "v1.28.3-r2",
    plan_id: str = "plan-1",
) -> dict[str, Any]:
    return {
        "planID": plan_id,
        "clusterVersion": "v1.28.3-r0",
        "targetVersion": target,
        "notBefore": not_before,
        "notAfter": "2026-03-10T06:00:00Z",
        "phase": "Pending",
    }


def window(next_start: str = "2026-03-06T02:00:00Z") -> dict[str, Any]:
    return {
        "weeklyPeriod": "Friday,Saturday",
        "startTime": "02:00",
        "durationHours": 4,
        "scope": "patch",
        "nextStart": next_start,
    }


def versions(patch: str = "r0", suggested: str = "r0") -> dict[str, Any]:
    return {
        "release": "v1.28.3",
        "patch": patch,
        "suggestedPatch": suggested,
        "targetVersions": ["v1.29.1-r0"],
    }


def answers(**parts: PartOutcome | Any) -> LifecycleAnswers:
    """`answers(preCheck=section, plans=None, versions=PartNotOffered(...))`: a
    value that is not an outcome is a `PartAnswer` of it."""
    by_part = {
        Part(name): value
        if isinstance(value, PartAnswer | PartNotOffered | PartFailed)
        else PartAnswer(value)
        for name, value in parts.items()
    }
    return LifecycleAnswers(by_part)


def workflows(
    phase: str = "Init",
    precheck_status: str | None = None,
    precheck_id: str = "pc-1",
    snapshot_status: str | None = None,
    uid: str = "wf-1",
) -> list[UpgradeWorkflow]:
    points = []
    if precheck_status is not None:
        points.append({"taskType": "PreCheck", "taskID": precheck_id, "status": precheck_status})
    if snapshot_status is not None:
        points.append({"taskType": "Snapshot", "taskID": "snap-1", "status": snapshot_status})
    item = {
        "metadata": {"uid": uid, "creationTimestamp": "2026-03-01T08:00:00Z"},
        "spec": {"clusterVersion": "v1.28.3-r0", "targetVersion": "v1.29.1-r0"},
        "status": {"phase": phase, "pointStatuses": points},
    }
    return list(parse_workflow_list({"items": [item]}).items)


@dataclass
class Watch:
    """One watch's stored status across polls, as the poll loop keeps it."""

    spec: WatchSpec = field(default_factory=make_spec)
    stored: dict[str, Any] | None = None
    outcome: PollOutcome = field(default_factory=lambda: WorkflowsFetched(workflows()))
    #: Start from the status of a first poll (its WorkflowDiscovered posted).
    settled: bool = True

    def __post_init__(self) -> None:
        if self.settled and self.stored is None:
            self.poll(T0 - timedelta(hours=1))

    def poll(
        self,
        now: datetime,
        lifecycle: LifecycleAnswers | None = None,
        outcome: PollOutcome | None = None,
        *,
        store: bool = True,
    ) -> ReconcileResult:
        result = reconcile(
            self.stored, self.spec, 1, outcome or self.outcome, now, lifecycle=lifecycle
        )
        if store:
            self.stored = as_stored(result.status)
        return result

    def events(
        self, now: datetime, lifecycle: LifecycleAnswers | None = None, **kwargs: Any
    ) -> list[tuple[str, str]]:
        return [(e.type, e.reason) for e in self.poll(now, lifecycle, **kwargs).events]

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        for condition in (self.stored or {}).get("conditions", []):
            if condition["type"] == kind:
                return condition  # type: ignore[no-any-return]
        return None

    def unchanged(self, now: datetime, lifecycle: LifecycleAnswers | None = None) -> bool:
        result = reconcile(self.stored, self.spec, 1, self.outcome, now, lifecycle=lifecycle)
        return status_patch(self.stored, result.status) is None and not result.events


def reasons(events: list[Event]) -> list[str]:
    return [str(event.reason) for event in events]
