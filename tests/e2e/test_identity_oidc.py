"""OIDC federation against the real control plane: ServiceAccount tokens minted by
the local kube-apiserver's TokenRequest API, verified by the simulator's STS
against that apiserver's own OIDC discovery document and JWKS (fetched over TLS,
trusting the control plane's CA), exchanged for temporary credentials that the
simulator's CCE API accepts.

Anonymous clients may read the discovery document and the JWKS only through the
`system:service-account-issuer-discovery` ClusterRole, which Kubernetes binds to
ServiceAccounts alone by default: the test binds it to `system:unauthenticated`,
as a cloud's STS (which holds no cluster credentials) needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from huaweicloudsdkcce.v3 import CceClient as SdkCceClient
from huaweicloudsdkcce.v3 import ListAutopilotUpgradeWorkFlowsRequest
from huaweicloudsdkcore.auth.provider import OidcStsCredentialProvider
from huaweicloudsdkcore.http.http_config import HttpConfig

from cce_upgrade_watch.cce.client import CceClient
from cce_upgrade_watch.cce.identity import IdentityExchangeFailed, IdentityHttp, OidcStsProvider
from cce_upgrade_watch.cce.senders import AiohttpSender
from cce_upgrade_watch.simulator import (
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    ManualClock,
    SimulatorServer,
    SimulatorThread,
)
from tests.support.controlplane import ControlPlane
from tests.support.oidc import AGENCY_URN, AUDIENCE, PROVIDER_URN, identity_config, subject

ISSUER = "https://kubernetes.default.svc.cluster.local"  # hack/localcluster's


@pytest.fixture
def simulator(
    control_plane: ControlPlane, namespace: str, discovery_open_to_anonymous: None
) -> Iterator[SimulatorThread]:
    port = (control_plane.directory / "apiserver.port").read_text().strip()
    with SimulatorThread(SimulatorServer("history", clock=ManualClock())) as sim:
        config = identity_config(
            project_id=DEMO_PROJECT_ID,
            discovery_url=f"https://127.0.0.1:{port}",
            ca_file=str(control_plane.directory / "certs" / "ca.crt"),
            trusted=[subject(namespace, "watcher")],
        )
        sim.call(lambda state: state.identity.configure(config))
        yield sim


def _token(control_plane: ControlPlane, namespace: str, account: str, audience: str) -> str:
    result = control_plane.kubectl(
        "-n", namespace, "create", "token", account, "--audience", audience, "--duration", "10m"
    )
    return result.stdout.strip()


async def _exchange_and_list(url: str, token: str) -> int:
    async def source() -> str:
        return token

    http = IdentityHttp(AiohttpSender(httpx.Timeout(10.0), 2))
    try:
        credentials = await OidcStsProvider(
            http=http,
            sts_endpoint=url,
            provider_urn=PROVIDER_URN,
            agency_urn=AGENCY_URN,
            token=source,
            subject="e2e",
        ).fetch()
    finally:
        await http.aclose()
    async with CceClient() as client:
        workflows = await client.list_upgrade_workflows(
            DEMO_PROJECT_ID,
            DEMO_CLUSTER_ID,
            endpoint=url,
            auth=credentials.auth(DEMO_PROJECT_ID),
        )
    return len(workflows)


def test_a_real_service_account_token_is_exchanged_at_sts(
    control_plane: ControlPlane, namespace: str, simulator: SimulatorThread
) -> None:
    control_plane.kubectl("-n", namespace, "create", "serviceaccount", "watcher")
    token = _token(control_plane, namespace, "watcher", AUDIENCE)
    assert asyncio.run(_exchange_and_list(simulator.url, token)) > 0
    assert simulator.call(lambda state: dict(state.identity.exchanges)) == {"oidc": 1}


@pytest.mark.filterwarnings("ignore:Unable to convert string to date")  # Go's layout, as ever
def test_the_official_sdk_exchanges_a_real_service_account_token(
    control_plane: ControlPlane,
    namespace: str,
    simulator: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    control_plane.kubectl("-n", namespace, "create", "serviceaccount", "watcher")
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", DEMO_PROJECT_ID)
    monkeypatch.setenv("TZ", "UTC")
    credentials = OidcStsCredentialProvider(
        "basic",
        provider_urn=PROVIDER_URN,
        agency_urn=AGENCY_URN,
        id_token=_token(control_plane, namespace, "watcher", AUDIENCE),
        sts_endpoint=simulator.url,
    ).get_credentials()
    config = HttpConfig.get_default_config()
    config.retry_times = 0
    client = (
        SdkCceClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([simulator.url])
        .build()
    )
    answer = client.list_autopilot_upgrade_work_flows(
        ListAutopilotUpgradeWorkFlowsRequest(cluster_id=DEMO_CLUSTER_ID)
    )
    assert answer.items


@pytest.mark.parametrize(
    ("account", "audience", "why"),
    [
        ("intruder", AUDIENCE, "does not trust system:serviceaccount:{namespace}:intruder"),
        ("watcher", "some-other-audience", "audience"),
    ],
)
def test_another_service_account_or_audience_is_refused(
    control_plane: ControlPlane,
    namespace: str,
    simulator: SimulatorThread,
    account: str,
    audience: str,
    why: str,
) -> None:
    control_plane.kubectl("-n", namespace, "create", "serviceaccount", account)
    token = _token(control_plane, namespace, account, audience)
    with pytest.raises(IdentityExchangeFailed) as caught:
        asyncio.run(_exchange_and_list(simulator.url, token))
    assert why.format(namespace=namespace) in str(caught.value)
    assert token not in str(caught.value)
    assert simulator.call(lambda state: dict(state.identity.sessions)) == {}
