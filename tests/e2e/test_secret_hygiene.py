"""Secret hygiene: distinctive credentials, the operator at DEBUG, every way out checked.

Full scenarios with AK/SK plus a security token, and with an IAM token: an upgrade
run to its end, 401s of each kind (wrong secret key, unknown access key, wrong
token, temporary keys without their token), a failure episode of 503s. Then no
credential value, nor its base64 form, may appear in the operator's log (at
DEBUG, `run -v`), the Events, the objects (status), the metrics output, or the
`check` command's output and errors (including its 401 path).

Keyless identities too (`spec.identity`): the ServiceAccount tokens the operator
mints (no JWT may appear anywhere), the temporary keys and security tokens STS,
IAM and the metadata service issue (with 20 s lifetimes, so renewals are
covered), IAM's unscoped tokens and the metadata session tokens, all read back
from the simulator's `/_sim/identity/issued`.

The access key id is not a secret in itself (it travels in every Authorization
header), but it is a credential: it must not appear whole either; the first four
characters, as `AkSkAuth` shows them, are allowed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cce_upgrade_watch.simulator import DEMO_PROJECT_ID
from tests.support.controlplane import ControlPlane
from tests.support.oidc import (
    AGENCY_URN,
    CROSS_AGENCY_URN,
    IDP_ID,
    PROVIDER_URN,
    identity_config,
    subject,
)
from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import (
    measured,
    request_count,
    swapped_operator,
    wait_for_requests,
)
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until
from tests.support.world import World

ACCESS_KEY = "HYGIENEAKQ7Z3X9W2V5"
SECRET_KEY = "hygiene-sk-5f0c2e9a7b1d4e6f8a0b"
SECURITY_TOKEN = "hygiene-sts-9d8c7b6a5f4e3d2c1b0a"
TOKEN = "hygiene-iam-token-1a2b3c4d5e6f7a8b"
WRONG_SECRET_KEY = "hygiene-wrong-sk-0e1d2c3b4a5f6e7d"
UNKNOWN_ACCESS_KEY = "HYGIENEUNKNOWNAK42XZ"
WRONG_TOKEN = "hygiene-wrong-token-7f6e5d4c3b2a19"
SECRETS = (SECRET_KEY, SECURITY_TOKEN, TOKEN, WRONG_SECRET_KEY, WRONG_TOKEN)
ACCESS_KEYS = (ACCESS_KEY, UNKNOWN_ACCESS_KEY)
STEP = 1000.0


def forbidden() -> list[str]:
    """Every value, and its base64 form as a Secret's data holds it."""
    values = [*SECRETS, *ACCESS_KEYS]
    return values + [base64.b64encode(value.encode()).decode() for value in values]


def leaks(text: str) -> list[str]:
    return [value for value in forbidden() if value in text]


#: A ServiceAccount token (any JWT): a base64url JSON header, then the claims.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


@pytest.fixture(scope="module")
def ambient_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """The one namespace whose watches may use the operator's ambient identity."""
    name = f"hygiene-ambient-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def debug_operator(
    control_plane: ControlPlane,
    crd: str,
    operator: OperatorProcess,
    simulator: SimulatorControl,
    ambient_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    simulator._call(
        "POST",
        "/credentials",
        json={
            "projectId": DEMO_PROJECT_ID,
            "accessKey": ACCESS_KEY,
            "secretKey": SECRET_KEY,
            "securityToken": SECURITY_TOKEN,
            "tokens": [TOKEN],
        },
    )
    args = (
        "-A", "-v", "--max-initial-delay", "0s", "--secret-cache-ttl", "1h",
        # Keyless identities, every exchange at the simulator on 127.0.0.1.
        "--sts-endpoint", simulator.url, "--iam-endpoint", simulator.url,
        "--ambient-credentials", "metadata", "--metadata-endpoint", simulator.url,
        "--ambient-credentials-namespaces", ambient_namespace,
    )  # fmt: skip
    log = tmp_path_factory.mktemp("debug-operator") / "operator.log"
    with swapped_operator(operator, control_plane.operator_kubeconfig, log, args) as replacement:
        yield replacement


@pytest.fixture
def world(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    debug_operator: OperatorProcess,
    namespace: str,
) -> World:
    return World(control_plane, simulator, debug_operator, namespace)


def secret(world: World, name: str, **data: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": world.namespace},
        "stringData": data,
    }
    world.plane.apply(json.dumps(manifest))


def timeline(*tasks: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"task": t, "queue": STEP, "run": STEP} for t in tasks]
    steps[0]["wait"] = STEP
    return {"steps": steps}


def check(world: World, *args: str, **env: str) -> str:
    """Run `cce-upgrade-watch check` against the simulator; its stdout and stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUD_SDK_", "CCE_"))}
    result = subprocess.run(
        [sys.executable, "-m", "cce_upgrade_watch", "check", "--endpoint", world.sim.url,
         "--project-id", DEMO_PROJECT_ID, *args],
        env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_no_credential_leaves_the_operator(world: World) -> None:
    upgrading = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.start_workflow(upgrading, timeline("PreCheck", "Cluster"), targetVersion="v1.29.1-r0")
    failing = world.sim.add_cluster()

    secret(world, "aksk", accessKey=ACCESS_KEY, secretKey=SECRET_KEY, securityToken=SECURITY_TOKEN)
    secret(world, "token", token=TOKEN)
    secret(
        world,
        "wrong-sk",
        accessKey=ACCESS_KEY,
        secretKey=WRONG_SECRET_KEY,
        securityToken=SECURITY_TOKEN,
    )
    secret(world, "unknown-ak", accessKey=UNKNOWN_ACCESS_KEY, secretKey=SECRET_KEY)
    secret(world, "no-sts", accessKey=ACCESS_KEY, secretKey=SECRET_KEY)
    secret(world, "wrong-token", token=WRONG_TOKEN)
    for name in ("aksk", "token"):
        world.create_watch(f"{name}-upgrade", upgrading, credentialsSecretRef={"name": name})
    world.create_watch("aksk-failing", failing, credentialsSecretRef={"name": "aksk"})
    for name in ("wrong-sk", "unknown-ak", "no-sts", "wrong-token"):
        world.create_watch(name, upgrading, credentialsSecretRef={"name": name})

    # The 401 paths: every kind of rejected credential.
    for name in ("wrong-sk", "unknown-ak", "no-sts", "wrong-token"):
        condition = world.wait_condition(name, "Synced", "False", "CredentialsInvalid")
        assert "401" in condition["message"]
    # A failure episode with server errors, retried at DEBUG.
    world.wait_condition("aksk-failing", "Synced", "True", "PollSucceeded")
    world.sim.add_fault("error", clusterId=failing, status=503)
    world.wait_condition("aksk-failing", "Synced", "False", "ApiUnavailable")
    wait_for_requests(world.sim, failing, request_count(world.sim, failing) + 3)
    world.sim.clear_faults(failing)
    world.wait_condition("aksk-failing", "Synced", "True", "PollSucceeded")
    # A whole upgrade, with both kinds of credentials.
    for _ in range(6):
        world.sim.advance(STEP)
        for name in ("aksk-upgrade", "token-upgrade"):
            world.poll_now(name)
    for name in ("aksk-upgrade", "token-upgrade"):
        world.wait_status(name, phase="Success", progress="2/2")
        world.wait_condition(name, "Ready", "True", "UpgradeSucceeded")

    # The check command, with the same credentials: success, then each 401.
    check_output = "\n".join(
        [
            check(
                world, "--cluster-id", upgrading, "-o", "json",
                CLOUD_SDK_AK=ACCESS_KEY, CLOUD_SDK_SK=SECRET_KEY,
                CLOUD_SDK_SECURITY_TOKEN=SECURITY_TOKEN,
            ),
            check(world, "--cluster-id", upgrading, CCE_AUTH_TOKEN=TOKEN),
            check(
                world, "--cluster-id", upgrading,
                CLOUD_SDK_AK=ACCESS_KEY, CLOUD_SDK_SK=WRONG_SECRET_KEY,
                CLOUD_SDK_SECURITY_TOKEN=SECURITY_TOKEN,
            ),
            check(
                world, "--cluster-id", upgrading,
                CLOUD_SDK_AK=UNKNOWN_ACCESS_KEY, CLOUD_SDK_SK=SECRET_KEY,
            ),
            check(world, "--cluster-id", upgrading, CCE_AUTH_TOKEN=WRONG_TOKEN),
        ]
    )  # fmt: skip
    assert check_output.count("exit 0") == 2, check_output
    assert check_output.count("exit 3") == 3, check_output

    outputs = {
        "operator log": world.operator.log(),
        "events": json.dumps(world.plane.kubectl_json("-n", world.namespace, "get", "events")),
        "objects": json.dumps(world.plane.kubectl_json("-n", world.namespace, "get", "cuw")),
        "metrics": world.operator.scrape_metrics(),
        "check": check_output,
    }
    assert "DEBUG" in outputs["operator log"]  # it really ran at DEBUG
    assert "401" in outputs["events"]
    assert "cceupgradewatch_workflow_phase" in outputs["metrics"]
    found = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
    assert found == {}, found
    measured(
        "credential values found",
        {
            "values_searched": len(forbidden()),
            "operator_log_lines": outputs["operator log"].count("\n"),
            "found": 0,
        },
    )


@pytest.mark.slow
def test_no_identity_secret_leaves_the_operator(
    world: World, ambient_namespace: str, discovery_open_to_anonymous: None
) -> None:
    """ServiceAccount tokens, temporary keys, security tokens, IAM's unscoped
    tokens and metadata session tokens: none in any output, with credentials that
    expire every 20 s (renewed meanwhile) and an exchange STS refuses."""
    plane, ns = world.plane, world.namespace
    port = (plane.directory / "apiserver.port").read_text().strip()
    world.sim.configure_identity(
        identity_config(
            project_id=DEMO_PROJECT_ID,
            discovery_url=f"https://127.0.0.1:{port}",
            ca_file=str(plane.directory / "certs" / "ca.crt"),
            trusted=[subject(ns, "watcher")],
            lifetime=20,
        )
    )
    for account in ("watcher", "intruder"):
        plane.kubectl("-n", ns, "create", "serviceaccount", account)
    cluster = world.sim.add_cluster()
    by_urn = {"identityProviderUrn": PROVIDER_URN, "agencyUrn": AGENCY_URN}
    identities: dict[str, dict[str, Any]] = {
        "oidc": {"oidc": {"serviceAccountName": "watcher", **by_urn}},
        "iam": {"oidc": {"serviceAccountName": "watcher", "identityProviderId": IDP_ID}},
        "crossed": {
            "oidc": {"serviceAccountName": "watcher", **by_urn},
            "assumeAgency": {"agencyUrn": CROSS_AGENCY_URN},
        },
        "intruder": {"oidc": {"serviceAccountName": "intruder", **by_urn}},
    }
    ambient = World(plane, world.sim, world.operator, ambient_namespace)
    for target, name, identity in [
        *((world, name, identity) for name, identity in identities.items()),
        (ambient, "ambient", {"ambient": {}}),
    ]:
        manifest = target.watch_manifest(name, cluster, identity=identity)
        del manifest["spec"]["credentialsSecretRef"]
        plane.apply(json.dumps(manifest))
    for name in ("oidc", "iam", "crossed"):
        world.wait_condition(name, "Synced", "True", timeout=60)
    ambient.wait_condition("ambient", "Synced", "True", timeout=60)
    world.wait_condition("intruder", "Synced", "False", "IdentityExchangeFailed", timeout=60)
    # Renewals too: wait for credentials issued after the first ones expired.
    first = len(world.sim.identity_issued()["sessions"])
    wait_until(
        lambda: len(world.sim.identity_issued()["sessions"]) >= first + 3,
        timeout=60,
        message="no credentials renewed",
    )

    issued = world.sim.identity_issued()
    values = [
        *(
            v
            for s in issued["sessions"]
            for v in (s["accessKey"], s["secretKey"], s["securityToken"])
        ),
        *issued["unscopedTokens"],
        *issued["metadataTokens"],
    ]
    assert len(issued["sessions"]) >= 5
    assert issued["unscopedTokens"]
    assert issued["metadataTokens"]
    outputs = {
        "operator log": world.operator.log(),
        "metrics": world.operator.scrape_metrics(),
    }
    for where in (ns, ambient_namespace):
        outputs[f"events {where}"] = json.dumps(plane.kubectl_json("-n", where, "get", "events"))
        outputs[f"objects {where}"] = json.dumps(plane.kubectl_json("-n", where, "get", "cuw"))
    assert "DEBUG" in outputs["operator log"]
    assert "IdentityExchangeFailed" in outputs[f"objects {ns}"]
    found = {
        where: [v[:6] + "..." for v in values if v in text] + JWT.findall(text)[:1]
        for where, text in outputs.items()
    }
    found = {where: hits for where, hits in found.items() if hits}
    assert found == {}, found
    measured(
        "identity secrets found",
        {"values_searched": len(values), "jwt_pattern": True, "found": 0},
    )
