"""Watches with `spec.identity` on the real control plane, operator included.

The operator mints ServiceAccount tokens through the real TokenRequest API; the
simulator's STS verifies them against the real apiserver's OIDC discovery and
JWKS and issues temporary credentials its CCE API accepts until they expire.
The operator runs with `--sts-endpoint`/`--iam-endpoint` and
`--metadata-endpoint` pointing at the simulator on 127.0.0.1 (never the
documented metadata address), and `--ambient-credentials metadata` for one
namespace of the module's own.

Reproduce the figures: `.venv/bin/pytest tests/e2e/test_identity_watch.py -rP | grep measured`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cce_upgrade_watch.simulator import DEMO_PROJECT_ID
from tests.support.controlplane import ControlPlane
from tests.support.oidc import (
    AGENCY_URN,
    CROSS_AGENCY_URN,
    PROVIDER_URN,
    identity_config,
    subject,
)
from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import measured, metric_total, request_count, swapped_operator
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until
from tests.support.world import World

#: Credentials the simulator issues live this long: renewed every ~18 s (10 %
#: margin), while the watch polls every 10 s.
LIFETIME_SECONDS = 20


@pytest.fixture(scope="module")
def ambient_namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"ambient-ok-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def identity_operator(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    operator: OperatorProcess,
    ambient_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    args = (
        "-A", "--max-initial-delay", "0s",
        "--sts-endpoint", simulator.url, "--iam-endpoint", simulator.url,
        "--ambient-credentials", "metadata",
        "--ambient-credentials-namespaces", ambient_namespace,
        "--metadata-endpoint", simulator.url,
    )  # fmt: skip
    log = tmp_path_factory.mktemp("identity-operator") / "operator.log"
    with swapped_operator(operator, control_plane.operator_kubeconfig, log, args) as process:
        yield process


def _configure(control_plane: ControlPlane, simulator: SimulatorControl, namespace: str) -> None:
    port = (control_plane.directory / "apiserver.port").read_text().strip()
    config = identity_config(
        project_id=DEMO_PROJECT_ID,
        discovery_url=f"https://127.0.0.1:{port}",
        ca_file=str(control_plane.directory / "certs" / "ca.crt"),
        trusted=[subject(namespace, "watcher")],
        lifetime=LIFETIME_SECONDS,
    )
    simulator.configure_identity(config)


def _exchanges(simulator: SimulatorControl) -> dict[str, int]:
    return dict(simulator.identity()["exchanges"])


@pytest.fixture
def keyless(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    identity_operator: OperatorProcess,
    namespace: str,
    discovery_open_to_anonymous: None,
) -> World:
    _configure(control_plane, simulator, namespace)
    for account in ("watcher", "intruder"):
        control_plane.kubectl("-n", namespace, "create", "serviceaccount", account)
    return World(control_plane, simulator, identity_operator, namespace)


def _oidc(account: str = "watcher") -> dict[str, Any]:
    return {
        "oidc": {
            "serviceAccountName": account,
            "identityProviderUrn": PROVIDER_URN,
            "agencyUrn": AGENCY_URN,
        }
    }


def _keyless_watch(world: World, name: str, cluster: str, identity: dict[str, Any]) -> None:
    manifest = world.watch_manifest(name, cluster, identity=identity)
    del manifest["spec"]["credentialsSecretRef"]
    world.plane.apply(json.dumps(manifest))


def _failed_polls(operator: OperatorProcess) -> float:
    """Polls that failed on credentials: an expired or unrenewed identity shows here."""
    return sum(
        metric_total(operator, "cceupgradewatch_polls_total", result=reason)
        for reason in ("IdentityExchangeFailed", "CredentialsInvalid")
    )


def _reasons(world: World, name: str) -> list[str]:
    return [reason for _, reason, _ in world.event_summaries(name)]


def test_an_oidc_watch_polls_without_any_secret_and_renews_in_time(keyless: World) -> None:
    world = keyless
    assert world.kubectl("get", "secrets", "-o", "name").stdout.strip() == ""
    cluster = world.sim.add_cluster()
    before = _exchanges(world.sim).get("oidc", 0)
    failed_before = _failed_polls(world.operator)
    refused_before = metric_total(world.operator, "cce_api_requests_total", code="401")
    _keyless_watch(world, "keyless", cluster, _oidc())
    world.wait_condition("keyless", "Synced", "True", timeout=60)
    # Three lifetimes: the credentials are renewed before they expire, and no
    # poll fails meanwhile.
    wait_until(
        lambda: _exchanges(world.sim).get("oidc", 0) - before >= 3,
        timeout=4 * LIFETIME_SECONDS,
        message=lambda: f"credentials never renewed: {_exchanges(world.sim)}",
    )
    measured("oidc exchanges", _exchanges(world.sim).get("oidc", 0) - before)
    assert world.condition("keyless", "Synced")["status"] == "True"  # type: ignore[index]
    assert "PollFailed" not in _reasons(world, "keyless")
    assert _failed_polls(world.operator) == failed_before  # not one poll failed
    # ... and renewed before they expired: CCE never refused them (a 401 would
    # have been retried with new credentials, hiding a late renewal).
    assert metric_total(world.operator, "cce_api_requests_total", code="401") == refused_before
    assert request_count(world.sim, cluster) >= 4


def test_an_agency_that_trusts_another_service_account_is_identity_exchange_failed(
    keyless: World,
) -> None:
    world = keyless
    cluster = world.sim.add_cluster()
    _keyless_watch(world, "intruder", cluster, _oidc("intruder"))
    synced = world.wait_condition(
        "intruder", "Synced", "False", reason="IdentityExchangeFailed", timeout=60
    )
    measured("refused", synced["message"])
    assert "HTTP 403" in synced["message"]
    assert "eyJ" not in synced["message"]  # no token in the status
    assert _failed_polls(world.operator) > 0
    assert request_count(world.sim, cluster) == 0  # nothing reached CCE


def test_a_missing_service_account_is_identity_exchange_failed(keyless: World) -> None:
    world = keyless
    cluster = world.sim.add_cluster()
    _keyless_watch(world, "nobody", cluster, _oidc("nobody"))
    synced = world.wait_condition(
        "nobody", "Synced", "False", reason="IdentityExchangeFailed", timeout=60
    )
    assert (
        f"ServiceAccount 'nobody' in namespace '{world.namespace}' does not exist"
        in (synced["message"])
    )


def test_cross_account_assume_agency(keyless: World) -> None:
    world = keyless
    cluster = world.sim.add_cluster()
    before = _exchanges(world.sim).get("assume", 0)
    identity = {**_oidc(), "assumeAgency": {"agencyUrn": CROSS_AGENCY_URN}}
    _keyless_watch(world, "crossed", cluster, identity)
    world.wait_condition("crossed", "Synced", "True", timeout=60)
    assert _exchanges(world.sim).get("assume", 0) > before


def test_ambient_identity_is_refused_outside_the_allowed_namespaces(keyless: World) -> None:
    world = keyless
    cluster = world.sim.add_cluster()
    before = _exchanges(world.sim).get("metadata", 0)
    _keyless_watch(world, "ambient", cluster, {"ambient": {}})
    synced = world.wait_condition(
        "ambient", "Synced", "False", reason="IdentityNotAllowed", timeout=60
    )
    measured("ambient refused", synced["message"])
    assert "--ambient-credentials-namespaces" in synced["message"]
    assert world.condition("ambient", "Stalled")["status"] == "True"  # type: ignore[index]
    assert _exchanges(world.sim).get("metadata", 0) == before  # nothing sent
    assert request_count(world.sim, cluster) == 0


def test_ambient_identity_works_in_an_allowed_namespace(
    keyless: World, ambient_namespace: str
) -> None:
    world = World(keyless.plane, keyless.sim, keyless.operator, ambient_namespace)
    cluster = world.sim.add_cluster()
    before = _exchanges(world.sim).get("metadata", 0)
    _keyless_watch(world, "ambient", cluster, {"ambient": {}})
    world.wait_condition("ambient", "Synced", "True", timeout=60)
    assert _exchanges(world.sim).get("metadata", 0) > before


def test_secret_form_still_works_beside_identities(keyless: World) -> None:
    world = keyless
    world.create_secret()
    cluster = world.sim.add_cluster()
    world.create_watch("classic", cluster)
    world.wait_condition("classic", "Synced", "True", timeout=60)
