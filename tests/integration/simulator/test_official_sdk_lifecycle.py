"""The official Huawei Cloud SDK reads every lifecycle answer of the simulator.

One test per call, with the SDK's own request class, signing and model
deserialisation: the field names the simulator sends are the SDK's. The
`lifecycle` scenario supplies a failed pre-check, a postponed plan, a window,
versions and a backup (see `simulator/scenarios/lifecycle.yaml`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from huaweicloudsdkcce.v3 import (
    ListAutopilotClusterMasterSnapshotTasksRequest,
    ListAutopilotPreCheckTasksRequest,
    ListAutopilotUpgradePlansRequest,
    ShowAutopilotClusterUpgradeInfoRequest,
    ShowAutopilotMaintenanceWindowRequest,
    ShowAutopilotPreCheckRequest,
)
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

from cce_upgrade_watch.simulator import (
    DEMO_CLUSTER_ID,
    ManualClock,
    SimulatorServer,
    SimulatorThread,
)
from cce_upgrade_watch.simulator.lifecycle import DEPRECATED_API_URL, DEPRECATED_API_USER_AGENT
from tests.integration.simulator.test_official_sdk import sdk_client

START = 1_700_000_000.0


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorServer("lifecycle", clock=ManualClock(START))) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _quiet_sdk_date_warnings() -> Iterator[None]:
    # The SDK cannot parse Go's time.Time.String() layout (it warns and keeps the string).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_sdk_lists_precheck_tasks(simulator: SimulatorThread) -> None:
    response = sdk_client(simulator.url).list_autopilot_pre_check_tasks(
        ListAutopilotPreCheckTasksRequest(cluster_id=DEMO_CLUSTER_ID)
    )
    (task,) = response.items
    assert task.status.phase == "Failed"
    assert task.spec.target_version == "v1.29.1-r0"
    assert task.status.expire_time_stamp


def test_sdk_shows_a_precheck_with_its_findings(simulator: SimulatorThread) -> None:
    client = sdk_client(simulator.url)
    task_id = (
        client.list_autopilot_pre_check_tasks(
            ListAutopilotPreCheckTasksRequest(cluster_id=DEMO_CLUSTER_ID)
        )
        .items[0]
        .metadata.uid
    )
    task = client.show_autopilot_pre_check(
        ShowAutopilotPreCheckRequest(cluster_id=DEMO_CLUSTER_ID, task_id=task_id)
    )
    assert task.metadata.uid == task_id
    items = task.status.cluster_check_status.items_status
    deprecated = next(item for item in items if item.name == "DeprecatedAPICheck")
    assert (deprecated.kind, deprecated.group, deprecated.level, deprecated.phase) == (
        "Exception",
        "LimitCheck",
        "Fatal",
        "Failed",
    )
    assert deprecated.error_codes == ["Cluster.PreCheck.0101"]
    (risk,) = deprecated.risk_source.deprecated_api_risks
    assert (risk.url, risk.user_agent) == (DEPRECATED_API_URL, DEPRECATED_API_USER_AGENT)
    (addon,) = task.status.addon_check_status.items_status
    assert (addon.kind, addon.level) == ("Risk", "Warning")
    assert addon.risk_source.addon_risks[0].addon_template_name == "coredns"
    (stage,) = task.status.node_check_status.node_stage_status
    assert stage.node_info.name == "autopilot-node-7f3a"
    assert stage.items_status[0].risk_source.node_risks[0].node_id == "node-7f3a-uid"

    with pytest.raises(ClientRequestException) as missing:
        client.show_autopilot_pre_check(
            ShowAutopilotPreCheckRequest(cluster_id=DEMO_CLUSTER_ID, task_id="no-such-task")
        )
    assert (missing.value.status_code, missing.value.error_code) == (404, "CCE.01404001")


def test_sdk_lists_the_plan_postponed_then_running(simulator: SimulatorThread) -> None:
    client = sdk_client(simulator.url)

    def plan() -> Any:
        return client.list_autopilot_upgrade_plans(
            ListAutopilotUpgradePlansRequest(cluster_id=DEMO_CLUSTER_ID)
        ).items

    first = plan()
    assert (first.spec.target_version, first.status.phase) == ("v1.28.3-r1", "Pending")
    assert first.spec.not_before.startswith("2023-11-14 23:13:20")  # start + 3600 s
    assert first.spec.not_before_deadline
    simulator.call(lambda state: state.clock.advance(300))
    postponed = plan()
    assert postponed.spec.not_before.startswith("2023-11-14 22:28:20")  # start + 900 s
    assert postponed.status.phase == "Pending"
    simulator.call(lambda state: state.clock.advance(600))
    assert plan().status.phase == "Running"
    simulator.call(lambda state: state.clock.advance(300))
    assert plan().status.phase == "Success"


def test_sdk_shows_the_maintenance_window(simulator: SimulatorThread) -> None:
    window = sdk_client(simulator.url).show_autopilot_maintenance_window(
        ShowAutopilotMaintenanceWindowRequest(cluster_id=DEMO_CLUSTER_ID)
    )
    assert (window.weekly_period, window.start_time) == ("Saturday,Sunday", "02:00")
    assert (window.duration_hours, window.upgrade_scope) == (4, "patch")


def test_sdk_shows_upgrade_info(simulator: SimulatorThread) -> None:
    info = sdk_client(simulator.url).show_autopilot_cluster_upgrade_info(
        ShowAutopilotClusterUpgradeInfoRequest(cluster_id=DEMO_CLUSTER_ID)
    )
    version = info.spec.version_info
    assert (version.release, version.patch, version.suggest_patch) == ("v1.28.3", "r0", "r1")
    assert version.target_versions == ["v1.28.3-r1", "v1.29.1-r0"]
    assert info.spec.last_upgrade_info.phase == "Failed"


def test_sdk_lists_master_snapshot_tasks(simulator: SimulatorThread) -> None:
    client = sdk_client(simulator.url)
    request = ListAutopilotClusterMasterSnapshotTasksRequest(cluster_id=DEMO_CLUSTER_ID)
    before = client.list_autopilot_cluster_master_snapshot_tasks(request)
    (manual,) = before.items
    assert manual.spec.items[0].type == "master-backup"
    assert manual.status.phase == "Success"
    assert before.status.latest_backup_time.startswith("2023-11-13 22:13:20")  # a day ago
    # The plan's upgrade runs at 900; its Snapshot task ends at 959.
    simulator.call(lambda state: state.clock.advance(1000))
    after = client.list_autopilot_cluster_master_snapshot_tasks(request)
    assert len(after.items) == 2
    assert after.status.latest_backup_time.startswith("2023-11-14 22:29:19")
