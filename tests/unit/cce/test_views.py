"""The status-shaped dicts shared by `check -o json` and the operator."""

from __future__ import annotations

import json
from typing import Any

from cce_upgrade_watch.cce.models import parse_workflow_list
from cce_upgrade_watch.cce.views import workflow_to_status_dict
from tests.unit.cce.conftest import workflow, workflow_list


def test_full_workflow_in_status_shape() -> None:
    points = [
        {
            "taskType": "PreCheck",
            "taskID": "t-1",
            "status": "Success",
            "startTimeStamp": "2024-01-01 08:00:00.25 +0800 CST",
            "endTimeStamp": "2024-01-01T00:01:00Z",
            "expireTimeStamp": "2024-01-01 00:30:00 +0000 UTC m=+0.5",
        },
        {"taskType": "Cluster", "status": "Queuing", "taskID": ""},
    ]
    lines: list[dict[str, Any]] = [
        {
            "startPoint": {"taskType": "PreCheck"},
            "endPoint": {"taskType": "Cluster"},
            "critical": "true",
        },
        {"startPoint": {"taskType": "Cluster"}, "endPoint": {}, "critical": False},
    ]
    wf = parse_workflow_list(
        workflow_list(workflow("w-1", phase="Running", points=points, lines=lines))
    ).items[0]
    assert workflow_to_status_dict(wf) == {
        "workflowID": "w-1",
        "phase": "Running",
        "clusterVersion": "v1.28.3-r0",
        "targetVersion": "v1.29.1-r0",
        "createdAt": "2023-11-24T08:39:15.894417Z",
        "updatedAt": "2023-11-25T02:57:25.718567Z",
        "pointStatuses": [
            {
                "taskType": "PreCheck",
                "taskID": "t-1",
                "status": "Success",
                "startTimeStamp": "2024-01-01T00:00:00.250000Z",
                "endTimeStamp": "2024-01-01T00:01:00Z",
                "expireTimeStamp": "2024-01-01T00:30:00Z",
            },
            {"taskType": "Cluster", "status": "Queuing"},
        ],
        "lineStatuses": [
            {
                "startPoint": {"taskType": "PreCheck"},
                "endPoint": {"taskType": "Cluster"},
                "critical": True,
            },
            {"startPoint": {"taskType": "Cluster"}, "critical": False},
        ],
    }


def test_absent_fields_are_omitted_never_null() -> None:
    wf = parse_workflow_list(
        {"items": [{"status": {"pointStatuses": [{"taskType": "PreCheck"}]}}]}
    ).items[0]
    result = workflow_to_status_dict(wf)
    assert result == {"pointStatuses": [{"taskType": "PreCheck"}], "lineStatuses": []}
    assert "null" not in json.dumps(result)
