"""Fixtures of the CCE client tests: a scripted local HTTP server and sample bodies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.cce.scripted_server import ScriptedServer, running_server

PROJECT_ID = "0123456789abcdef0123456789abcdef"
CLUSTER_ID = "b4b9e60f-8aa2-11ee-af09-0255ac10004f"
ACCESS_KEY = "HPUAEXAMPLEACCESSKEY"
SECRET_KEY = "s3cr3t-SK-never-printed-0123456789abcdef"
SECURITY_TOKEN = "sts-token-never-printed-gQpzdm93"
TOKEN = "MIIT-iam-token-never-printed-xyz"
SECRETS = (SECRET_KEY, SECURITY_TOKEN, TOKEN)

WORKFLOWS_PATH = (
    f"/autopilot/v3/projects/{PROJECT_ID}/clusters/{CLUSTER_ID}/operation/upgradeworkflows"
)


def workflow(
    uid: str,
    *,
    phase: str = "Success",
    created: str = "2023-11-24 08:39:15.894417 +0000 UTC",
    updated: str = "2023-11-25 02:57:25.718567 +0000 UTC",
    points: list[dict[str, Any]] | None = None,
    lines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An UpgradeWorkFlow as the API sends it."""
    return {
        "kind": "WorkFlowTask",
        "apiVersion": "v3",
        "metadata": {"uid": uid, "creationTimestamp": created, "updateTimestamp": updated},
        "spec": {
            "clusterID": CLUSTER_ID,
            "clusterVersion": "v1.28.3-r0",
            "targetVersion": "v1.29.1-r0",
        },
        "status": {
            "phase": phase,
            "pointStatuses": points if points is not None else [{"taskType": "PreCheck"}],
            "lineStatuses": lines if lines is not None else [],
        },
    }


def workflow_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "List", "apiVersion": "v3", "items": list(items)}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from running_server()
