"""The read-only calls around an upgrade, as the simulated cloud answers them.

Pre-checks and backups are read off the cluster's workflows (a workflow's
PreCheck point is a pre-check task with the same id, its Snapshot point a
master-backup task), so they move with the scenario and the clock; plans,
the maintenance window, the suggested patch and manual backups come from the
scenario's `lifecycle` block. Like workflows, everything is a function of the
clock: a plan shows its first `notBefore` until it is postponed, its later one
after, and runs (a workflow starts) at the last one.

Shapes and field names are the official SDK's model classes
(`huaweicloudsdkcce.v3.model`), which parse every answer here (tests prove it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cce_upgrade_watch.simulator import timeline
from cce_upgrade_watch.simulator.scenarios import (
    DEFAULT_TARGET_VERSION,
    ItemsShape,
    LifecycleSeed,
    WindowSeed,
)
from cce_upgrade_watch.simulator.timeline import PointView

if TYPE_CHECKING:
    from cce_upgrade_watch.simulator.state import Cluster, Workflow

Stamp = Callable[[float], str]

PLAN_PENDING = "Pending"
PLAN_RUNNING = "Running"
PLAN_SUCCESS = "Success"
PLAN_FAILED = "Failed"

# The pre-check task's phase for each status of its workflow point.
_PRECHECK_PHASES = {timeline.TASK_QUEUING: "Init"}

# Findings of a pre-check that fails: what blocks a v1.28 -> v1.29 upgrade in
# practice (an API removed in v1.29 still called, a node not ready), beside a
# risk to confirm and a hint. Field names from PreCheckItemStatus and RiskSource.
DEPRECATED_API_URL = "/apis/flowcontrol.apiserver.k8s.io/v1beta2/flowschemas"
DEPRECATED_API_USER_AGENT = "kubectl/v1.27.4 (linux/amd64) kubernetes/fa3d799"
NODE_NAME = "autopilot-node-7f3a"
FAILED_FINDINGS: tuple[dict[str, Any], ...] = (
    {
        "name": "DeprecatedAPICheck",
        "kind": "Exception",
        "group": "LimitCheck",
        "level": "Fatal",
        "phase": "Failed",
        "message": "flowcontrol.apiserver.k8s.io/v1beta2 FlowSchema is removed in v1.29; "
        "move its clients to v1beta3",
        "errorCodes": ["Cluster.PreCheck.0101"],
        "riskSource": {
            "deprecatedAPIRisks": [
                {"url": DEPRECATED_API_URL, "userAgent": DEPRECATED_API_USER_AGENT}
            ]
        },
    },
    {
        "name": "NodeStatusCheck",
        "kind": "Exception",
        "group": "NodeCheck",
        "level": "Fatal",
        "phase": "Failed",
        "message": "the node is NotReady",
        "errorCodes": ["Cluster.PreCheck.0301"],
        "riskSource": {"nodeRisks": [{"NodeID": "node-7f3a-uid"}]},
    },
)
WARNING_FINDINGS: tuple[dict[str, Any], ...] = (
    {
        "name": "AddonVersionCheck",
        "kind": "Risk",
        "group": "AddonCheck",
        "level": "Warning",
        "phase": "Failed",
        "message": "coredns 1.25.1 will be upgraded with the cluster",
        "errorCodes": ["Cluster.PreCheck.0402"],
        "riskSource": {"addonRisks": [{"addonTemplateName": "coredns", "alias": "CoreDNS"}]},
    },
    {
        "name": "MasterConfigCheck",
        "kind": "Risk",
        "group": "MasterCheck",
        "level": "Info",
        "phase": "Failed",
        "message": "a changed kube-apiserver flag is reset to its default",
        "riskSource": {
            "configurationRisks": [
                {"package": "kube-apiserver", "field": "max-requests-inflight", "value": "400"}
            ]
        },
    },
)
PASSED: tuple[dict[str, Any], ...] = (
    {"name": "ClusterQuotaCheck", "kind": "Exception", "group": "LimitCheck", "level": "Fatal"},
    {"name": "MasterHealthCheck", "kind": "Exception", "group": "MasterCheck", "level": "Fatal"},
)


@dataclass(frozen=True)
class ScheduledPlan:
    """A plan in simulator time (epoch seconds of the simulated clock)."""

    uid: str
    target_version: str
    cluster_version: str
    not_before: float
    not_after: float | None
    not_before_deadline: float | None
    postponed_at: float | None
    postponed_to: float | None
    workflow_uid: str  # the workflow the plan starts when it runs

    def not_before_at(self, now: float) -> float:
        if self.postponed_at is not None and self.postponed_to is not None:
            return self.postponed_to if now >= self.postponed_at else self.not_before
        return self.not_before

    def runs_at(self) -> float:
        return self.postponed_to if self.postponed_to is not None else self.not_before


@dataclass
class ClusterLifecycle:
    """One cluster's lifecycle data beyond its workflows."""

    window: WindowSeed | None = field(default_factory=WindowSeed)
    plans: list[ScheduledPlan] = field(default_factory=list)
    plan_items_shape: ItemsShape = "single"
    suggested_patch: str | None = None
    target_versions: tuple[str, ...] = (DEFAULT_TARGET_VERSION,)
    backups: list[float] = field(default_factory=list)  # manual ones, when completed

    @classmethod
    def from_seed(
        cls, seed: LifecycleSeed, started_at: float, time_scale: float
    ) -> ClusterLifecycle:
        return cls(
            window=seed.maintenance_window,
            plan_items_shape=seed.plan_items_shape,
            suggested_patch=seed.suggested_patch,
            target_versions=seed.target_versions,
            backups=sorted(started_at + at / time_scale for at in seed.backups),
        )


def split_version(version: str) -> tuple[str, str | None]:
    """`v1.28.3-r0` -> (`v1.28.3`, `r0`): the release and the patch."""
    release, _, patch = version.partition("-")
    return release, patch or None


def _stable_id(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(str(part) for part in parts)))


def _points(cluster: Cluster, task_type: str, now: float) -> Iterator[tuple[Workflow, PointView]]:
    """Each visible workflow's point of `task_type` that has a task id (has queued)."""
    for workflow in cluster.visible_workflows(now):
        for point in workflow.snapshot(now).points:
            if point.task_type == task_type and point.task_id is not None:
                yield workflow, point


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


# -- pre-checks ------------------------------------------------------------------------


def _item(template: dict[str, Any], passed: bool) -> dict[str, Any]:
    item = dict(template)
    if passed:
        item.setdefault("phase", "Success")
        item.setdefault("message", "passed")
    return item


def render_precheck(
    cluster: Cluster, workflow: Workflow, point: PointView, stamp: Stamp
) -> dict[str, Any]:
    """A PreCheck point as the pre-check task it stands for."""
    status = point.status
    phase = _PRECHECK_PHASES.get(status, status)
    ended = status in timeline.TERMINAL_TASK_STATUSES
    findings: tuple[dict[str, Any], ...] = ()
    if status == timeline.TASK_FAILED:
        findings = FAILED_FINDINGS + WARNING_FINDINGS
    elif status == timeline.TASK_SUCCESS:
        findings = WARNING_FINDINGS
    items = [_item(f, False) for f in findings if f["group"] != "NodeCheck"]
    items += [_item(p, True) for p in PASSED] if ended else []
    node_items = [_item(f, False) for f in findings if f["group"] == "NodeCheck"]
    check_phase = phase if ended else status
    created = point.started_at if point.started_at is not None else workflow.created_at
    metadata: dict[str, Any] = {"uid": point.task_id, "creationTimestamp": stamp(created)}
    _put(metadata, "updateTimestamp", stamp(point.ended_at) if point.ended_at else None)
    body_status: dict[str, Any] = {"phase": phase}
    _put(body_status, "expireTimeStamp", stamp(point.expires_at) if point.expires_at else None)
    if status == timeline.TASK_FAILED:
        body_status["message"] = "pre-check found problems that block the upgrade"
    body_status["clusterCheckStatus"] = {
        "phase": check_phase,
        "itemsStatus": [i for i in items if i["group"] != "AddonCheck"],
    }
    body_status["addonCheckStatus"] = {
        "phase": check_phase,
        "itemsStatus": [i for i in items if i["group"] == "AddonCheck"],
    }
    body_status["nodeCheckStatus"] = {
        "phase": check_phase,
        "nodeStageStatus": [
            {
                "nodeInfo": {
                    "uid": "node-7f3a-uid",
                    "name": NODE_NAME,
                    "status": "NotReady" if node_items else "Ready",
                    "nodeType": "autopilot",
                },
                "itemsStatus": node_items,
            }
        ]
        if ended
        else [],
    }
    return {
        "kind": "PreCheckTask",
        "apiVersion": "v3",
        "metadata": metadata,
        "spec": {
            "clusterID": cluster.cluster_id,
            "clusterVersion": workflow.cluster_version,
            "targetVersion": workflow.target_version,
        },
        "status": body_status,
    }


def precheck_tasks(cluster: Cluster, now: float, stamp: Stamp) -> list[dict[str, Any]]:
    return [
        render_precheck(cluster, workflow, point, stamp)
        for workflow, point in _points(cluster, timeline.TASK_PRECHECK, now)
    ]


def find_precheck(
    cluster: Cluster, task_id: str, now: float, stamp: Stamp
) -> dict[str, Any] | None:
    for workflow, point in _points(cluster, timeline.TASK_PRECHECK, now):
        if point.task_id == task_id:
            return render_precheck(cluster, workflow, point, stamp)
    return None


# -- plans ---------------------------------------------------------------------------------


def plan_phase(cluster: Cluster, plan: ScheduledPlan, now: float) -> str:
    workflow = cluster.find_workflow(plan.workflow_uid, now)
    if workflow is None:
        return PLAN_PENDING
    phase = workflow.snapshot(now).phase
    if phase == timeline.PHASE_SUCCESS:
        return PLAN_SUCCESS
    if phase in (timeline.PHASE_PENDING, timeline.PHASE_CANCEL):
        return PLAN_FAILED
    return PLAN_RUNNING


def render_plan(cluster: Cluster, plan: ScheduledPlan, now: float, stamp: Stamp) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "clusterID": cluster.cluster_id,
        "clusterVersion": plan.cluster_version,
        "targetVersion": plan.target_version,
        "notBefore": stamp(plan.not_before_at(now)),
    }
    _put(spec, "notAfter", stamp(plan.not_after) if plan.not_after is not None else None)
    if plan.not_before_deadline is not None:
        spec["notBeforeDeadline"] = stamp(plan.not_before_deadline)
    return {
        "kind": "UpgradePlan",
        "apiVersion": "v3",
        "metadata": {"uid": plan.uid, "name": f"upgradeplan-{plan.uid[:8]}"},
        "spec": spec,
        "status": {"phase": plan_phase(cluster, plan, now)},
    }


def plan_list(cluster: Cluster, now: float, stamp: Stamp, single: bool) -> dict[str, Any]:
    """The plans; `single` (the SDK's type) shows only the one still to come, or the last."""
    rendered = [render_plan(cluster, plan, now, stamp) for plan in cluster.lifecycle.plans]
    body: dict[str, Any] = {"kind": "List", "apiVersion": "v3"}
    if single or cluster.lifecycle.plan_items_shape == "single":
        pending = [p for p in rendered if p["status"]["phase"] in (PLAN_PENDING, PLAN_RUNNING)]
        chosen = pending or rendered[-1:]
        if chosen:
            body["items"] = chosen[0]
    else:
        body["items"] = rendered
    return body


# -- window, versions, backups ----------------------------------------------------------------


def render_window(window: WindowSeed) -> dict[str, Any]:
    return {
        "weekly_period": window.weekly_period,
        "start_time": window.start_time,
        "duration_hours": window.duration_hours,
        "upgrade_scope": window.scope,
    }


def render_upgrade_info(cluster: Cluster, now: float, stamp: Stamp) -> dict[str, Any]:
    current = cluster.current_version(now)
    release, patch = split_version(current)
    lifecycle = cluster.lifecycle
    version_info: dict[str, Any] = {"release": release}
    _put(version_info, "patch", patch)
    _put(version_info, "suggestPatch", lifecycle.suggested_patch or patch)
    version_info["targetVersions"] = [v for v in lifecycle.target_versions if v != current]
    spec: dict[str, Any] = {"versionInfo": version_info}
    for workflow in reversed(cluster.visible_workflows(now)):
        snap = workflow.snapshot(now)
        if snap.phase in (timeline.PHASE_SUCCESS, timeline.PHASE_PENDING, timeline.PHASE_CANCEL):
            spec["lastUpgradeInfo"] = {
                "phase": "Success" if snap.phase == timeline.PHASE_SUCCESS else "Failed",
                "progress": "100",
                "completionTime": stamp(snap.updated_at),
            }
            break
    return {
        "kind": "UpgradeInfo",
        "apiVersion": "v3",
        "metadata": {"uid": _stable_id(cluster.cluster_id, "upgradeinfo")},
        "spec": spec,
        "status": {"phase": "Available"},
    }


def _snapshot_task(
    uid: str, status: str, started: float, ended: float | None, stamp: Stamp
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": _stable_id(uid, "master-backup"),
        "type": "master-backup",
        "status": status,
        "creationTimestamp": stamp(started),
    }
    _put(item, "updateTimestamp", stamp(ended) if ended is not None else None)
    task_status: dict[str, Any] = {
        "phase": status,
        "progress": "100" if status == timeline.TASK_SUCCESS else "0",
    }
    _put(task_status, "completionTime", stamp(ended) if ended is not None else None)
    return {
        "kind": "SnapshotTask",
        "apiVersion": "v3.1",
        "metadata": {"uid": uid, "creationTimestamp": stamp(started)},
        "spec": {"items": [item]},
        "status": task_status,
    }


def snapshot_list(cluster: Cluster, now: float, stamp: Stamp) -> dict[str, Any]:
    """Manual backups and each workflow's Snapshot point, with `latestBackupTime`."""
    items: list[dict[str, Any]] = []
    done: list[float] = []
    for at in cluster.lifecycle.backups:
        if at <= now:
            uid = _stable_id(cluster.cluster_id, "backup", at)
            items.append(_snapshot_task(uid, timeline.TASK_SUCCESS, at, at, stamp))
            done.append(at)
    for _, point in _points(cluster, timeline.TASK_SNAPSHOT, now):
        started = point.started_at if point.started_at is not None else now
        assert point.task_id is not None
        items.append(_snapshot_task(point.task_id, point.status, started, point.ended_at, stamp))
        if point.status == timeline.TASK_SUCCESS and point.ended_at is not None:
            done.append(point.ended_at)
    body: dict[str, Any] = {"kind": "List", "apiVersion": "v3.1", "metadata": {}, "items": items}
    if done:
        body["status"] = {"latestBackupTime": stamp(max(done))}
    return body
