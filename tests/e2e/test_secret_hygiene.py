"""Secret hygiene: distinctive credentials, the operator at DEBUG, every way out checked.

Full scenarios with AK/SK plus a security token, and with an IAM token: an upgrade
run to its end, 401s of each kind (wrong secret key, unknown access key, wrong
token, temporary keys without their token), a failure episode of 503s. Then no
credential value, nor its base64 form, may appear in the operator's log (at
DEBUG, `run -v`), the Events, the objects (status), the metrics output, or the
`check` command's output and errors (including its 401 path).

The access key id is not a secret in itself (it travels in every Authorization
header), but it is a credential: it must not appear whole either; the first four
characters, as `AkSkAuth` shows them, are allowed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cce_upgrade_watch.simulator import DEMO_PROJECT_ID
from tests.support.controlplane import ControlPlane
from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import (
    measured,
    request_count,
    swapped_operator,
    wait_for_requests,
)
from tests.support.simulator import SimulatorControl
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


@pytest.fixture(scope="module")
def debug_operator(
    control_plane: ControlPlane,
    crd: str,
    operator: OperatorProcess,
    simulator: SimulatorControl,
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
    args = ("-A", "-v", "--max-initial-delay", "0s", "--secret-cache-ttl", "1h")
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
