"""Workflows as plain dicts in the shape of the `CceUpgradeWatch` status.

One conversion serves `check -o json` and the operator's status, so both show
the same thing: the API's own camelCase names, timestamps in RFC 3339 UTC,
`critical` as a bool, and absent fields omitted (never `null`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cce_upgrade_watch.cce.models import LineStatus, PointStatus, UpgradeWorkflow
from cce_upgrade_watch.cce.timestamps import format_rfc3339


def _put(target: dict[str, Any], key: str, value: str | datetime | bool | None) -> None:
    if value is None:
        return
    target[key] = format_rfc3339(value) if isinstance(value, datetime) else value


def point_status_to_dict(point: PointStatus) -> dict[str, Any]:
    result: dict[str, Any] = {}
    _put(result, "taskType", point.task_type)
    _put(result, "taskID", point.task_id)
    _put(result, "status", point.status)
    _put(result, "startTimeStamp", point.start_time_stamp)
    _put(result, "endTimeStamp", point.end_time_stamp)
    _put(result, "expireTimeStamp", point.expire_time_stamp)
    return result


def line_status_to_dict(line: LineStatus) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if line.start_point is not None and line.start_point.task_type is not None:
        result["startPoint"] = {"taskType": line.start_point.task_type}
    if line.end_point is not None and line.end_point.task_type is not None:
        result["endPoint"] = {"taskType": line.end_point.task_type}
    _put(result, "critical", line.critical)
    return result


def workflow_to_status_dict(workflow: UpgradeWorkflow) -> dict[str, Any]:
    """The status shape of one workflow (`workflowID`, `phase`, versions, tasks, path)."""
    result: dict[str, Any] = {}
    _put(result, "workflowID", workflow.metadata.uid)
    _put(result, "phase", workflow.status.phase)
    _put(result, "clusterVersion", workflow.spec.cluster_version)
    _put(result, "targetVersion", workflow.spec.target_version)
    _put(result, "createdAt", workflow.metadata.creation_timestamp)
    _put(result, "updatedAt", workflow.metadata.update_timestamp)
    result["pointStatuses"] = [point_status_to_dict(p) for p in workflow.status.point_statuses]
    result["lineStatuses"] = [line_status_to_dict(line) for line in workflow.status.line_statuses]
    # A list cut to the models' bound says so, rather than passing for the whole one.
    if workflow.status.point_statuses_omitted:
        result["pointStatusesOmitted"] = workflow.status.point_statuses_omitted
    if workflow.status.line_statuses_omitted:
        result["lineStatusesOmitted"] = workflow.status.line_statuses_omitted
    return result
