"""A client no one here wrote: the official Huawei Cloud SDK against the simulator.

The SDK signs with its own SDK-HMAC-SHA256 code and reads errors with its own
handler, so these tests pin the simulator to what the real cloud accepts and sends.
The SDK keeps `http://` endpoints as they are (`ClientBuilder.build` only adds
`https://` to endpoints without a scheme), so no TLS is involved.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from huaweicloudsdkcce.v3 import (
    CceClient,
    CreateAutopilotUpgradeWorkFlowRequest,
    ListAutopilotUpgradeWorkFlowsRequest,
    ShowAutopilotUpgradeWorkFlowRequest,
    UpgradeWorkFlow,
)
from huaweicloudsdkcce.v3.model import WorkFlowSpec
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig

from cce_upgrade_watch.simulator import (
    DEMO_ACCESS_KEY,
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
    ManualClock,
    SimulatorServer,
    SimulatorThread,
)

OTHER_PROJECT = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorServer("history", clock=ManualClock())) as sim:
        yield sim


def sdk_client(
    url: str,
    *,
    secret_key: str = DEMO_SECRET_KEY,
    project_id: str = DEMO_PROJECT_ID,
    access_key: str = DEMO_ACCESS_KEY,
    security_token: str | None = None,
) -> CceClient:
    config = HttpConfig.get_default_config()
    config.retry_times = 0
    config.timeout = (5, 10)
    credentials = BasicCredentials(access_key, secret_key, project_id)
    if security_token is not None:
        credentials = credentials.with_security_token(security_token)
    return (
        CceClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([url])
        .build()
    )


@pytest.fixture(autouse=True)
def _quiet_sdk_date_warnings() -> Iterator[None]:
    # The SDK cannot parse Go's time.Time.String() layout either (it warns and
    # keeps the string), as with the real cloud.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_sdk_lists_workflows_with_ak_sk(simulator: SimulatorThread) -> None:
    client = sdk_client(simulator.url)
    response = client.list_autopilot_upgrade_work_flows(
        ListAutopilotUpgradeWorkFlowsRequest(cluster_id=DEMO_CLUSTER_ID)
    )
    assert response.kind == "List"
    assert [item.status.phase for item in response.items] == ["Success", "Cancel", "Init"]
    newest = response.items[-1]
    assert newest.spec.cluster_id == DEMO_CLUSTER_ID
    assert newest.spec.target_version == "v1.29.1-r0"
    assert [p.task_type for p in newest.status.point_statuses] == [
        "PreCheck",
        "Snapshot",
        "Cluster",
        "PostCheck",
    ]
    assert newest.status.line_statuses[0].critical is True
    first = response.items[0].status.point_statuses[0]
    assert first.task_id
    assert first.status == "Success"


def test_sdk_shows_and_creates(simulator: SimulatorThread) -> None:
    client = sdk_client(simulator.url)
    listing = client.list_autopilot_upgrade_work_flows(
        ListAutopilotUpgradeWorkFlowsRequest(cluster_id=DEMO_CLUSTER_ID)
    )
    uid = listing.items[0].metadata.uid
    shown = client.show_autopilot_upgrade_work_flow(
        ShowAutopilotUpgradeWorkFlowRequest(cluster_id=DEMO_CLUSTER_ID, upgrade_workflow_id=uid)
    )
    assert shown.metadata.uid == uid

    # A workflow is still unfinished, so the SDK's create (a signed POST with a
    # JSON body) is refused with the CCE error; once it is done, accepted.
    body = UpgradeWorkFlow(
        kind="WorkFlowTask",
        api_version="v3",
        spec=WorkFlowSpec(cluster_id=DEMO_CLUSTER_ID, target_version="v1.30.0-r0"),
    )
    request = CreateAutopilotUpgradeWorkFlowRequest(cluster_id=DEMO_CLUSTER_ID, body=body)
    with pytest.raises(ClientRequestException) as refused:
        client.create_autopilot_upgrade_work_flow(request)
    assert (refused.value.status_code, refused.value.error_code) == (400, "CCE.01400001")
    simulator.call(lambda state: state.clock.advance(1000))
    created = client.create_autopilot_upgrade_work_flow(request)
    assert created.status.phase == "Init"
    assert created.spec.cluster_version == "v1.29.1-r0"


def test_sdk_with_a_wrong_secret_key_gets_401(simulator: SimulatorThread) -> None:
    client = sdk_client(simulator.url, secret_key="definitely-wrong")
    with pytest.raises(ClientRequestException) as raised:
        client.list_autopilot_upgrade_work_flows(
            ListAutopilotUpgradeWorkFlowsRequest(cluster_id=DEMO_CLUSTER_ID)
        )
    error = raised.value
    assert (error.status_code, error.error_code) == (401, "CCE.01401001")
    assert len(error.request_id) == 32
    assert "signature" in error.error_msg


def test_sdk_project_checks_404_then_403(simulator: SimulatorThread) -> None:
    simulator.call(
        lambda state: state.credentials.add_access_key(OTHER_PROJECT, "OTHERAK", "other-sk")
    )
    client = sdk_client(
        simulator.url, project_id=OTHER_PROJECT, access_key="OTHERAK", secret_key="other-sk"
    )
    with pytest.raises(ClientRequestException) as raised:
        client.list_autopilot_upgrade_work_flows(
            ListAutopilotUpgradeWorkFlowsRequest(cluster_id=DEMO_CLUSTER_ID)
        )
    assert (raised.value.status_code, raised.value.error_code) == (404, "CCE.01404001")
    wrong_project = sdk_client(simulator.url, project_id=OTHER_PROJECT)
    with pytest.raises(ClientRequestException) as forbidden:
        wrong_project.list_autopilot_upgrade_work_flows(
            ListAutopilotUpgradeWorkFlowsRequest(cluster_id=DEMO_CLUSTER_ID)
        )
    assert (forbidden.value.status_code, forbidden.value.error_code) == (403, "CCE.01403001")


def test_sdk_with_temporary_credentials(simulator: SimulatorThread) -> None:
    simulator.call(
        lambda state: state.credentials.add_access_key(
            DEMO_PROJECT_ID, "TEMPAK", "temp-sk", security_token="sts-token"
        )
    )
    client = sdk_client(
        simulator.url, access_key="TEMPAK", secret_key="temp-sk", security_token="sts-token"
    )
    response = client.list_autopilot_upgrade_work_flows(
        ListAutopilotUpgradeWorkFlowsRequest(cluster_id=DEMO_CLUSTER_ID)
    )
    assert len(response.items) == 3
    without = sdk_client(simulator.url, access_key="TEMPAK", secret_key="temp-sk")
    with pytest.raises(ClientRequestException) as raised:
        without.list_autopilot_upgrade_work_flows(
            ListAutopilotUpgradeWorkFlowsRequest(cluster_id=DEMO_CLUSTER_ID)
        )
    assert raised.value.status_code == 401
