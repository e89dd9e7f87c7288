"""The read-only calls around an upgrade: pre-checks, plans, window, versions, backups.

Each is one signed GET through the shared `CceClient` (same signing, retries,
errors, body handling and metrics as the workflow list; `CceClient.get_object`),
parsed leniently by `lifecycle_models.py`. Paths and field names are the
official SDK's (`huaweicloudsdkcce.v3.CceClient`: `show_autopilot_pre_check`,
`list_autopilot_pre_check_tasks`, `list_autopilot_upgrade_plans`,
`show_autopilot_maintenance_window`, `show_autopilot_cluster_upgrade_info`,
`list_autopilot_cluster_master_snapshot_tasks`). The operator never calls the
writing neighbours of these (creating a pre-check, postponing a plan...).

A region that does not offer one of these APIs answers 404 through its
gateway, an identity without the permission 403: callers treat those as "not
available" for that part only (`is_not_available`), never as a failed watch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from cce_upgrade_watch.cce.client import CceClient
from cce_upgrade_watch.cce.errors import CceApiError, ClusterNotFound, Forbidden, InvalidResponse
from cce_upgrade_watch.cce.lifecycle_models import (
    LifecycleParseError,
    MaintenanceWindow,
    PreCheckTask,
    PreCheckTaskList,
    SnapshotTaskList,
    UpgradeInfo,
    UpgradePlan,
    UpgradePlanList,
    parse_lifecycle,
)
from cce_upgrade_watch.cce.lifecycle_views import select_precheck

SHOW_PRECHECK = "show pre-check"
LIST_PRECHECKS = "list pre-check tasks"
LIST_PLANS = "list upgrade plans"
SHOW_WINDOW = "show maintenance window"
SHOW_UPGRADE_INFO = "show upgrade info"
LIST_SNAPSHOTS = "list master snapshot tasks"

M = TypeVar("M")


def cluster_path(project_id: str, cluster_id: str, *, api_version: str = "v3") -> str:
    """`/autopilot/{v3|v3.1}/projects/{project_id}/clusters/{cluster_id}`, ids quoted
    with nothing safe so that an id cannot add path segments."""
    if not project_id or not cluster_id:
        raise ValueError("project_id and cluster_id must not be empty")
    return (
        f"/autopilot/{api_version}/projects/{quote(project_id, safe='')}"
        f"/clusters/{quote(cluster_id, safe='')}"
    )


def is_not_available(error: CceApiError) -> bool:
    """A 404 (this region's gateway does not offer the API) or a 403 (this identity
    may not read it): that part is left empty, the rest goes on."""
    return isinstance(error, ClusterNotFound | Forbidden) or error.status_code in (403, 404)


def not_available_reason(error: CceApiError) -> str:
    """Why a part is empty, in one line with what support needs (status, code, request id)."""
    what = (
        "this identity may not read it"
        if error.status_code == 403 or isinstance(error, Forbidden)
        else "this region or endpoint does not offer it"
    )
    code = f" {error.error_code}" if error.error_code else ""
    return f"{what} (HTTP {error.status_code}{code}, request id {error.request_id or 'none'})"


@dataclass(frozen=True)
class LifecycleApi:
    """The lifecycle calls of one cluster, with one set of credentials."""

    client: CceClient
    project_id: str
    cluster_id: str
    auth: httpx.Auth
    endpoint: str | None = None
    region: str | None = None
    #: Whose share of the client's request slots the calls use (a watch's namespace).
    tenant: str = ""

    async def _get(
        self, operation: str, path: str, parse: Callable[[dict[str, Any]], M], *, v: str = "v3"
    ) -> M:
        body = await self.client.get_object(
            operation,
            cluster_path(self.project_id, self.cluster_id, api_version=v) + path,
            auth=self.auth,
            endpoint=self.endpoint,
            region=self.region,
            tenant=self.tenant,
        )
        try:
            return parse(body)
        except LifecycleParseError as exc:
            raise InvalidResponse(str(exc), operation=operation) from None

    async def show_precheck(self, task_id: str) -> PreCheckTask:
        """`ShowAutopilotPreCheck`: one pre-check task (the PreCheck point's `taskID`)."""
        if not task_id:
            raise ValueError("task_id must not be empty")
        path = "/operation/precheck/tasks/" + quote(task_id, safe="")
        return await self._get(SHOW_PRECHECK, path, lambda b: parse_lifecycle(PreCheckTask, b))

    async def newest_precheck(self, task_id: str | None) -> PreCheckTask | None:
        """The pre-check of `task_id` (the PreCheck point's), else the newest listed
        one: also when that task is not found (404), which may mean the region
        does not offer the show call while the list still tells."""
        if task_id:
            try:
                return await self.show_precheck(task_id)
            except CceApiError as exc:
                if exc.status_code != 404:
                    raise
        return select_precheck(await self.list_precheck_tasks())

    async def list_precheck_tasks(self) -> list[PreCheckTask]:
        """`ListAutopilotPreCheckTasks`: the cluster's pre-check tasks."""
        parsed = await self._get(
            LIST_PRECHECKS,
            "/operation/precheck/tasks",
            lambda b: parse_lifecycle(PreCheckTaskList, b),
        )
        return parsed.items

    async def list_upgrade_plans(self) -> list[UpgradePlan]:
        """`ListAutopilotUpgradePlans`: the automatic upgrade plans (one or a list)."""
        parsed = await self._get(
            LIST_PLANS, "/upgradeplans", lambda b: parse_lifecycle(UpgradePlanList, b)
        )
        return parsed.items

    async def show_maintenance_window(self) -> MaintenanceWindow:
        """`ShowAutopilotMaintenanceWindow`."""
        return await self._get(
            SHOW_WINDOW, "/maintenancewindows", lambda b: parse_lifecycle(MaintenanceWindow, b)
        )

    async def show_upgrade_info(self) -> UpgradeInfo:
        """`ShowAutopilotClusterUpgradeInfo`: versions and the last upgrade."""
        return await self._get(
            SHOW_UPGRADE_INFO, "/upgradeinfo", lambda b: parse_lifecycle(UpgradeInfo, b)
        )

    async def list_snapshot_tasks(self) -> SnapshotTaskList:
        """`ListAutopilotClusterMasterSnapshotTasks` (an API of version v3.1)."""
        return await self._get(
            LIST_SNAPSHOTS,
            "/operation/snapshot/tasks",
            lambda b: parse_lifecycle(SnapshotTaskList, b),
            v="v3.1",
        )
