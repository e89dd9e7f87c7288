"""`check` with the SDK's keyless environment variables, against the simulator.

Each path obtains temporary credentials from the simulator's identity side and
then lists workflows with them; a refused exchange exits 3 and prints no secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cce_upgrade_watch.cli import main
from cce_upgrade_watch.simulator import (
    DEMO_ACCESS_KEY,
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
    ManualClock,
    SimulatorServer,
    SimulatorThread,
)
from cce_upgrade_watch.simulator.identity_app import POD_IDENTITY_PATH
from tests.support.oidc import (
    AGENCY_URN,
    CROSS_AGENCY_URN,
    IDP_ID,
    PROVIDER_URN,
    TestIssuer,
    identity_config,
    subject,
)

VARIABLES = (
    "CLOUD_SDK_AK",
    "CLOUD_SDK_SK",
    "CLOUD_SDK_SECURITY_TOKEN",
    "CCE_AUTH_TOKEN",
    "HUAWEICLOUD_OIDC_PROVIDER_URN",
    "HUAWEICLOUD_OIDC_AGENCY_URN",
    "HUAWEICLOUD_OIDC_ID_TOKEN",
    "HUAWEICLOUD_OIDC_TOKEN_FILE",
    "HUAWEICLOUD_OIDC_DURATION_SECONDS",
    "HUAWEICLOUD_SDK_IDP_ID",
    "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
    "HC_CONTAINER_CREDENTIALS_FULL_URI",
    "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "HUAWEICLOUD_SDK_STS_ENDPOINT",
    "HUAWEICLOUD_SDK_IAM_ENDPOINT",
)


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def simulator(issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorThread]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with SimulatorThread(SimulatorServer("history", clock=ManualClock())) as sim:
        sim.call(
            lambda state: state.identity.configure(
                identity_config(
                    project_id=DEMO_PROJECT_ID,
                    jwks=issuer.jwks(),
                    trusted_access_keys=[DEMO_ACCESS_KEY],
                )
            )
        )
        monkeypatch.setenv("HUAWEICLOUD_SDK_STS_ENDPOINT", sim.url)
        monkeypatch.setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", sim.url)
        yield sim


@pytest.fixture
def token(issuer: TestIssuer, tmp_path: Path) -> Path:
    """A projected-token file of the trusted ServiceAccount team-a/watcher."""
    path = tmp_path / "token"
    path.write_text(issuer.token(subject("team-a", "watcher")))
    return path


def _check(simulator: SimulatorThread, *extra: str) -> int:
    return main(
        [
            "check",
            "--endpoint",
            simulator.url,
            "--project-id",
            DEMO_PROJECT_ID,
            "--cluster-id",
            DEMO_CLUSTER_ID,
            "-o",
            "json",
            *extra,
        ]
    )


def _workflows(capsys: pytest.CaptureFixture[str]) -> int:
    return len(json.loads(capsys.readouterr().out)["workflows"])


def _exchanges(simulator: SimulatorThread) -> dict[str, int]:
    return simulator.call(lambda state: dict(state.identity.exchanges))


def test_check_with_oidc_federation(
    simulator: SimulatorThread,
    token: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HUAWEICLOUD_OIDC_PROVIDER_URN", PROVIDER_URN)
    monkeypatch.setenv("HUAWEICLOUD_OIDC_AGENCY_URN", AGENCY_URN)
    monkeypatch.setenv("HUAWEICLOUD_OIDC_TOKEN_FILE", str(token))
    assert _check(simulator) == 0
    assert _workflows(capsys) > 0
    assert _exchanges(simulator) == {"oidc": 1}
    # ... and on to another account's agency.
    assert _check(simulator, "--assume-agency", CROSS_AGENCY_URN) == 0
    assert _workflows(capsys) > 0
    assert _exchanges(simulator) == {"oidc": 2, "assume": 1}


def test_check_with_a_refused_token_exits_3_without_the_token(
    simulator: SimulatorThread,
    issuer: TestIssuer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = issuer.token(subject("team-b", "intruder"))
    monkeypatch.setenv("HUAWEICLOUD_OIDC_PROVIDER_URN", PROVIDER_URN)
    monkeypatch.setenv("HUAWEICLOUD_OIDC_AGENCY_URN", AGENCY_URN)
    monkeypatch.setenv("HUAWEICLOUD_OIDC_ID_TOKEN", token)
    assert _check(simulator) == 3
    err = capsys.readouterr().err
    assert "does not trust system:serviceaccount:team-b:intruder" in err
    assert token not in err


def test_check_with_iam_federation(
    simulator: SimulatorThread,
    token: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HUAWEICLOUD_SDK_IDP_ID", IDP_ID)
    monkeypatch.setenv("HUAWEICLOUD_SDK_ID_TOKEN_FILE", str(token))
    assert _check(simulator) == 0
    assert _workflows(capsys) > 0
    assert _exchanges(simulator) == {"iam": 1}


def test_check_with_pod_identity(
    simulator: SimulatorThread,
    token: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HC_CONTAINER_CREDENTIALS_FULL_URI", simulator.url + POD_IDENTITY_PATH)
    monkeypatch.setenv("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
    assert _check(simulator) == 0
    assert _workflows(capsys) > 0
    assert _exchanges(simulator) == {"pod-identity": 1}


def test_check_with_the_metadata_service(
    simulator: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check(simulator, "--metadata-endpoint", simulator.url) == 0
    assert _workflows(capsys) > 0
    assert _exchanges(simulator) == {"metadata": 1}


def test_check_assumes_an_agency_with_static_keys(
    simulator: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CLOUD_SDK_AK", DEMO_ACCESS_KEY)
    monkeypatch.setenv("CLOUD_SDK_SK", DEMO_SECRET_KEY)
    assert _check(simulator, "--assume-agency", CROSS_AGENCY_URN) == 0
    assert _workflows(capsys) > 0
    assert _exchanges(simulator) == {"assume": 1}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"HUAWEICLOUD_OIDC_PROVIDER_URN": PROVIDER_URN}, "HUAWEICLOUD_OIDC_AGENCY_URN"),
        ({"HUAWEICLOUD_SDK_IDP_ID": IDP_ID}, "HUAWEICLOUD_SDK_ID_TOKEN_FILE"),
        ({"HC_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/x"}, "TOKEN_FILE"),
        ({}, "no credentials"),
    ],
)
def test_check_names_what_is_missing(
    simulator: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variables: dict[str, str],
    message: str,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert _check(simulator) == 3
    assert message in capsys.readouterr().err
    assert _exchanges(simulator) == {}


def test_check_refuses_plain_http_to_a_remote_metadata_address(
    simulator: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check(simulator, "--metadata-endpoint", "http://192.0.2.1") == 2
    assert "link-local" in capsys.readouterr().err
