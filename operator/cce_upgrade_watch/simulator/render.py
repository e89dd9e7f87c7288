"""The API's JSON shapes: workflows, lists and error bodies, as the cloud writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cce_upgrade_watch.simulator.scenarios import ErrorStyle, ItemsShape, TimestampFormat
from cce_upgrade_watch.simulator.state import Workflow
from cce_upgrade_watch.simulator.timeline import WorkflowSnapshot

CODE_INVALID_REQUEST = "CCE.01400001"
CODE_NOT_FOUND = "CCE.01404001"

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


# Polls render the same few transition times over and over; formatting them is
# most of a list answer's cost without a cache. 64k entries cover 5000 clusters.
_FORMAT_CACHE_SIZE = 65536


@lru_cache(maxsize=_FORMAT_CACHE_SIZE)
def format_go_time(epoch: float) -> str:
    """Go's `time.Time.String()` for a UTC time: `2023-11-24 08:39:15.894417 +0000 UTC`.

    Go trims trailing zeros of the fraction, and drops it when it is zero.
    """
    moment = datetime.fromtimestamp(epoch, UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    if fraction:
        text += "." + fraction
    return text + " +0000 UTC"


@lru_cache(maxsize=_FORMAT_CACHE_SIZE)
def format_rfc3339(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def timestamp_formatter(timestamp_format: TimestampFormat | None) -> Any:
    return format_rfc3339 if timestamp_format == "rfc3339" else format_go_time


def render_workflow(
    workflow: Workflow, snapshot: WorkflowSnapshot, timestamp_format: TimestampFormat | None
) -> dict[str, Any]:
    """One UpgradeWorkFlow. Absent values are left out, as Go's `omitempty` does."""
    stamp = timestamp_formatter(timestamp_format)
    points: list[dict[str, Any]] = []
    for point in snapshot.points:
        rendered: dict[str, Any] = {"taskType": point.task_type}
        if point.task_id is not None:
            rendered["taskID"] = point.task_id
        rendered["status"] = point.status
        if point.started_at is not None:
            rendered["startTimeStamp"] = stamp(point.started_at)
        if point.ended_at is not None:
            rendered["endTimeStamp"] = stamp(point.ended_at)
        if point.expires_at is not None:
            rendered["expireTimeStamp"] = stamp(point.expires_at)
        points.append(rendered)
    return {
        "kind": "WorkFlowTask",
        "apiVersion": "v3",
        "metadata": {
            "uid": workflow.uid,
            "name": workflow.name,
            "labels": workflow.labels,
            "annotations": workflow.annotations,
            "creationTimestamp": stamp(workflow.created_at),
            "updateTimestamp": stamp(snapshot.updated_at),
        },
        "spec": {
            "clusterID": workflow.cluster_id,
            "clusterVersion": workflow.cluster_version,
            "targetVersion": workflow.target_version,
        },
        "status": {
            "phase": snapshot.phase,
            "pointStatuses": points,
            "lineStatuses": [
                {
                    "startPoint": {"taskType": line.start},
                    "endPoint": {"taskType": line.end},
                    "critical": line.critical,
                }
                for line in snapshot.lines
            ],
        },
    }


def render_list(items: list[dict[str, Any]], items_shape: ItemsShape | None) -> dict[str, Any]:
    """The list answer; `single` is the doc example's shape: the newest item, bare."""
    body: dict[str, Any] = {"kind": "List", "apiVersion": "v3"}
    if items_shape == "single":
        if items:  # with nothing to show, Go's omitempty leaves `items` out
            body["items"] = items[-1]
    else:
        body["items"] = items
    return body


def error_body(style: ErrorStyle | None, status: int, code: str, message: str) -> dict[str, Any]:
    """`{"error_code", "error_msg"}` as documented, or the Kubernetes-Status-like
    body some CCE endpoints send (`errorCode`, `errorMessage`, `message`, ...)."""
    if style == "status":
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": _REASONS.get(status, "Unknown"),
            "code": status,
            "errorCode": code,
            "errorMessage": message,
        }
    return {"error_code": code, "error_msg": message}


def default_error_code(status: int) -> str:
    """`CCE.01` + the HTTP status + `001`, the pattern of every documented code."""
    return f"CCE.01{status}001"
