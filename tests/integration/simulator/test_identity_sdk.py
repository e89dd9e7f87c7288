"""The official SDK's credential providers against the simulator's identity side.

One test per path: the SDK (`huaweicloudsdkcore.auth.provider`, `huaweicloudsdksts`)
obtains temporary credentials from the simulator with its own requests, parses
the answer with its own code, and then lists workflows through the simulator's
CCE API with them. So the simulator speaks what Huawei's own client speaks, and
the operator's providers (tested against the same simulator) agree with both.
Every address is the simulator on 127.0.0.1.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from huaweicloudsdkcce.v3 import CceClient, ListAutopilotUpgradeWorkFlowsRequest
from huaweicloudsdkcore.auth import internal as sdk_internal
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.auth.provider import (
    EnvCredentialProvider,
    MetadataCredentialProvider,
    OidcStsCredentialProvider,
    PodIdentityCredentialProvider,
)
from huaweicloudsdkcore.exceptions.exceptions import SdkException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdksts.v1 import AssumeAgencyReqBody, AssumeAgencyRequest, StsClient

from cce_upgrade_watch.simulator import (
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    SimulatorThread,
)
from cce_upgrade_watch.simulator.identity_app import POD_IDENTITY_PATH
from tests.support.oidc import (
    AGENCY_URN,
    CROSS_AGENCY_URN,
    PROVIDER_URN,
    TestIssuer,
    subject,
)


@pytest.fixture(autouse=True)
def _sdk_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Nothing of the caller's environment may steer the SDK elsewhere.
    for name in (
        "HUAWEICLOUD_SDK_AK",
        "HUAWEICLOUD_SDK_SK",
        "HUAWEICLOUD_SDK_STS_ENDPOINT",
        "HUAWEICLOUD_SDK_IAM_ENDPOINT",
        "HUAWEICLOUD_OIDC_ID_TOKEN",
        "HUAWEICLOUD_OIDC_TOKEN_FILE",
        "HC_CONTAINER_CREDENTIALS_FULL_URI",
        "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TZ", "UTC")  # the SDK reads expiry times with time.mktime
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _config() -> HttpConfig:
    config = HttpConfig.get_default_config()
    config.retry_times = 0
    config.timeout = (5, 10)
    return config


def _list_with(credentials: BasicCredentials, url: str) -> int:
    client = (
        CceClient.new_builder()
        .with_http_config(_config())
        .with_credentials(credentials)
        .with_endpoints([url])
        .build()
    )
    response = client.list_autopilot_upgrade_work_flows(
        ListAutopilotUpgradeWorkFlowsRequest(cluster_id=DEMO_CLUSTER_ID)
    )
    return len(response.items or [])


def _temporary_keys(simulator: SimulatorThread) -> int:
    return simulator.call(lambda state: len(state.identity.sessions))


def _sdk_oidc(simulator: SimulatorThread, id_token: str) -> BasicCredentials:
    """The SDK's OIDC provider (the exchange happens on the credentials' first use)."""
    return OidcStsCredentialProvider(
        "basic",
        provider_urn=PROVIDER_URN,
        agency_urn=AGENCY_URN,
        id_token=id_token,
        sts_endpoint=simulator.url,
    ).get_credentials()


def test_sdk_oidc_sts_provider_gets_working_credentials(
    simulator: SimulatorThread, issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", DEMO_PROJECT_ID)
    credentials = _sdk_oidc(simulator, issuer.token(subject("team-a", "watcher")))
    assert _list_with(credentials, simulator.url) > 0
    assert simulator.call(lambda state: state.identity.exchanges) == {"oidc": 1}


def test_sdk_oidc_sts_provider_is_refused_for_an_untrusted_service_account(
    simulator: SimulatorThread, issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", DEMO_PROJECT_ID)
    credentials = _sdk_oidc(simulator, issuer.token(subject("team-b", "watcher")))
    with pytest.raises(SdkException, match="does not trust"):
        _list_with(credentials, simulator.url)
    assert _temporary_keys(simulator) == 0


def test_sdk_federal_accessor_two_step_iam_path(
    simulator: SimulatorThread,
    issuer: TestIssuer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(issuer.token(subject("team-a", "watcher")))
    monkeypatch.setenv("HUAWEICLOUD_SDK_IDP_ID", "kube")
    monkeypatch.setenv("HUAWEICLOUD_SDK_ID_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", DEMO_PROJECT_ID)
    credentials = EnvCredentialProvider.get_basic().get_credentials()
    credentials.with_iam_endpoint(simulator.url)
    assert _list_with(credentials, simulator.url) > 0
    assert simulator.call(lambda state: state.identity.exchanges) == {"iam": 1}


def test_sdk_metadata_accessor_gets_the_node_agency(
    simulator: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK hardcodes the link-local address; it is pointed at the simulator
    # before anything is sent, and checked to be loopback.
    monkeypatch.setattr(sdk_internal.MetadataAccessor, "_METADATA_ENDPOINT", simulator.url)
    assert sdk_internal.MetadataAccessor._METADATA_ENDPOINT.startswith("http://127.0.0.1:")
    provider = MetadataCredentialProvider.get_basic()
    provider.project_id = DEMO_PROJECT_ID
    credentials = provider.get_credentials()
    assert credentials.security_token
    assert _list_with(credentials, simulator.url) > 0
    assert simulator.call(lambda state: state.identity.exchanges) == {"metadata": 1}


def test_sdk_pod_identity_provider(
    simulator: SimulatorThread,
    issuer: TestIssuer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(issuer.token(subject("team-a", "watcher")))
    monkeypatch.setenv("HC_CONTAINER_CREDENTIALS_FULL_URI", simulator.url + POD_IDENTITY_PATH)
    monkeypatch.setenv("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
    credentials = PodIdentityCredentialProvider.get_basic().get_credentials()
    credentials.with_project_id(DEMO_PROJECT_ID)
    assert _list_with(credentials, simulator.url) > 0
    assert simulator.call(lambda state: state.identity.exchanges) == {"pod-identity": 1}


def test_sdk_sts_client_assumes_a_cross_account_agency(
    simulator: SimulatorThread, issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # First the OIDC session (the source), then AssumeAgency signed with it.
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", DEMO_PROJECT_ID)
    source = _sdk_oidc(simulator, issuer.token(subject("team-a", "watcher")))
    _list_with(source, simulator.url)  # the SDK exchanges on first use
    sts = (
        StsClient.new_builder()
        .with_http_config(_config())
        .with_credentials(
            # StsClient takes BasicCredentials; the project header is signed, not needed.
            BasicCredentials(source.ak, source.sk, DEMO_PROJECT_ID).with_security_token(
                source.security_token
            )
        )
        .with_endpoints([simulator.url])
        .build()
    )
    answer = sts.assume_agency(
        AssumeAgencyRequest(
            body=AssumeAgencyReqBody(
                agency_urn=CROSS_AGENCY_URN, agency_session_name="sdk", duration_seconds=900
            )
        )
    )
    assert answer.assumed_agency.urn == CROSS_AGENCY_URN
    crossed = BasicCredentials(
        answer.credentials.access_key_id, answer.credentials.secret_access_key, DEMO_PROJECT_ID
    ).with_security_token(answer.credentials.security_token)
    assert _list_with(crossed, simulator.url) > 0
    assert simulator.call(lambda state: state.identity.exchanges) == {"oidc": 1, "assume": 1}
