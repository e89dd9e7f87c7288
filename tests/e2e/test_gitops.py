"""What Flux, Argo CD, kstatus and `kubectl wait` conclude about live watches.

Real control plane, simulator and operator drive each scenario of README and
docs/INSTALL.md ("GitOps recipes") to its states; at each, the live object
(`kubectl get -o json`) goes to the GitOps oracle (hack/gitops-oracle: kstatus
from sigs.k8s.io/cli-utils, the Flux example's healthCheckExprs through
fluxcd/pkg/runtime/cel, health.lua in gopher-lua as Argo CD runs it), and the
built kubectl runs `kubectl wait --for=condition=Ready --timeout=0s` (check
once) on the same resourceVersion. The promises:
- Flux's gate blocks (InProgress) while an upgrade runs and fails (Failed) on a
  stuck one or on polling that needs a person;
- Argo CD shows Progressing / Degraded / Healthy / Suspended as INSTALL.md's table says;
- `kubectl wait --for=condition=Ready` returns exactly when kstatus says Current
  (and Flux's own kstatus, for a plain `healthChecks` entry, says the same).
Several watches share the session's one operator, so these are two tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_operator_upgrades import FOUR_TASKS, STEP, task_states, timeline
from tests.support.gitops import GitOpsOracle, Judgement
from tests.support.news_simulator import NEWS_CLUSTER, news_simulator
from tests.support.simulator import SimulatorProcess
from tests.support.waiting import wait_until
from tests.support.world import World

HEALTHY = ("Healthy", "Current", "Current")
PROGRESSING = ("Progressing", "InProgress", "InProgress")
DEGRADED = ("Degraded", "Failed", "Failed")


def observe(
    world: World, oracle: GitOpsOracle, name: str
) -> tuple[dict[str, Any], Judgement, bool]:
    """The live object, the oracle's verdicts on it, and whether `kubectl wait
    --for=condition=Ready` returned at once, all about one resourceVersion."""
    for _ in range(10):
        before = world.get(name)
        waited = world.kubectl(
            "wait", "--for=condition=Ready", f"cuw/{name}", "--timeout=0s", check=False
        ).returncode == 0  # fmt: skip
        after = world.get(name)
        if before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]:
            return after, oracle.judge(after), waited
    raise AssertionError(f"{name} kept changing; could not judge one version of it")


def condition_message(obj: dict[str, Any], condition_type: str) -> str:
    for condition in obj["status"]["conditions"]:
        if condition["type"] == condition_type:
            return str(condition["message"])
    raise AssertionError(f"no {condition_type} condition: {json.dumps(obj['status'])}")


def expect(
    world: World,
    oracle: GitOpsOracle,
    name: str,
    verdicts: tuple[str, str, str],
    *,
    argocd_message_from: str | None = None,
) -> dict[str, Any]:
    """Assert (Argo CD, kstatus, Flux) on the live object, and that `kubectl wait`
    agrees with kstatus; returns the object."""
    obj, judgement, waited = observe(world, oracle, name)
    context = f"{name}: {judgement}\nstatus: {json.dumps(obj.get('status'))}"
    assert judgement.summary() == verdicts, context
    assert waited == (judgement.kstatus.status == "Current"), context
    # Flux with the watch only in healthChecks (its kstatus fork) agrees.
    assert judgement.flux_kstatus == judgement.kstatus, context
    # The example's expressions and the script evaluate cleanly on what the operator writes.
    assert not judgement.flux.error, context
    assert not judgement.argocd.error, context
    if argocd_message_from is not None:
        assert judgement.argocd.message == condition_message(obj, argocd_message_from), context
    return obj


def watch_upgrade(
    world: World,
    name: str,
    cluster_fields: dict[str, Any] | None = None,
    workflow_fields: dict[str, Any] | None = None,
    **steps: Any,
) -> str:
    """A cluster with an upgrade workflow of FOUR_TASKS (`timeline(**steps)`), a watch
    `name` on it, seen in Init; returns the cluster's id."""
    cluster = world.sim.add_cluster(**(cluster_fields or {}))
    world.sim.start_workflow(cluster, timeline(*FOUR_TASKS, **steps), **(workflow_fields or {}))
    world.create_watch(name, cluster)
    world.wait_status(name, phase="Init")
    return cluster


def test_gitops_verdicts_through_upgrades(world: World, gitops_oracle: GitOpsOracle) -> None:
    world.create_secret()

    # No upgrade ever: healthy, the gate open.
    idle = world.sim.add_cluster()
    world.create_watch("idle", idle)
    world.wait_condition("idle", "Ready", "True", "NoUpgrade")
    expect(world, gitops_oracle, "idle", HEALTHY, argocd_message_from="Ready")

    # A successful upgrade: waiting in Init (no task runs: Ready, UpgradeNotStarted),
    # running (the gate blocks), over (open again).
    watch_upgrade(world, "success", {"version": "v1.28.3-r0"}, {"targetVersion": "v1.29.1-r0"})
    world.wait_condition("success", "Ready", "True", "UpgradeNotStarted")
    expect(world, gitops_oracle, "success", HEALTHY, argocd_message_from="Ready")
    world.sim.advance(2 * STEP)  # PreCheck queued, then running
    world.poll_now("success")
    world.wait_status("success", phase="Running", currentTask="PreCheck")
    world.wait_condition("success", "Reconciling", "True", "UpgradeRunning")
    expect(world, gitops_oracle, "success", PROGRESSING, argocd_message_from="Reconciling")
    world.sim.advance(7 * STEP)  # every task through
    world.poll_now("success")
    world.wait_status("success", phase="Success", progress="4/4")
    expect(world, gitops_oracle, "success", HEALTHY, argocd_message_from="Ready")

    # The pre-check fails: the upgrade is stuck (phase Pending); Flux fails the gate.
    watch_upgrade(world, "precheck", fail="PreCheck")
    world.sim.advance(3 * STEP)  # queued, ran, failed
    world.poll_now("precheck")
    world.wait_status("precheck", phase="Pending")
    world.wait_condition("precheck", "Stalled", "True", "TaskFailed")
    expect(world, gitops_oracle, "precheck", DEGRADED, argocd_message_from="Stalled")

    # The Cluster task fails and a rollback follows: stuck, then running the
    # rollback, then stuck again (the workflow stays Pending after a rollback).
    watch_upgrade(world, "rollback", fail="Cluster", rollback=True)
    world.sim.advance(7 * STEP)
    world.poll_now("rollback")
    world.wait_status("rollback", phase="Pending", currentTask="Cluster")
    expect(world, gitops_oracle, "rollback", DEGRADED, argocd_message_from="Stalled")
    world.sim.advance(STEP)  # the Rollback task queues
    world.poll_now("rollback")
    world.wait_status("rollback", phase="Running", currentTask="Rollback")
    expect(world, gitops_oracle, "rollback", PROGRESSING, argocd_message_from="Reconciling")
    world.sim.advance(2 * STEP)
    world.poll_now("rollback")
    wait_until(
        lambda: task_states(world.status("rollback")).get("Rollback") == "Success",
        timeout=30, message=lambda: f"the rollback never ended: {world.status('rollback')}",
    )  # fmt: skip
    world.wait_status("rollback", phase="Pending")
    expect(world, gitops_oracle, "rollback", DEGRADED, argocd_message_from="Stalled")

    # Cancelled after a failed pre-check: over, nothing runs, nothing stuck.
    cluster = watch_upgrade(world, "cancelled", fail="PreCheck")
    world.sim.advance(3 * STEP)
    world.sim.force(cluster, phase="Cancel")
    world.poll_now("cancelled")
    world.wait_status("cancelled", phase="Cancel")
    world.wait_condition("cancelled", "Ready", "True", "UpgradeCancelled")
    expect(world, gitops_oracle, "cancelled", HEALTHY, argocd_message_from="Ready")


def test_gitops_verdicts_when_polling_needs_a_person_suspend_and_spec_change(
    world: World, gitops_oracle: GitOpsOracle
) -> None:
    world.create_secret()

    # Polling that needs a person: Stalled, so Degraded and Failed, never "in progress".
    world.create_secret("wrong-keys", secret_key="not-the-right-secret-key")
    world.create_watch(
        "badkeys", world.sim.add_cluster(), credentialsSecretRef={"name": "wrong-keys"}
    )
    world.create_watch("nosecret", world.sim.add_cluster(), credentialsSecretRef={"name": "absent"})
    world.create_watch("nocluster", "00000000-0000-4000-8000-000000000000")
    for name, reason in (
        ("badkeys", "CredentialsInvalid"),
        ("nosecret", "CredentialsNotFound"),
        ("nocluster", "ClusterNotFound"),
    ):
        world.wait_condition(name, "Stalled", "True", reason)
        expect(world, gitops_oracle, name, DEGRADED, argocd_message_from="Stalled")

    # Suspended mid-upgrade: Argo CD says Suspended; the kept status still says an
    # upgrade runs, so kstatus and Flux keep the gate closed.
    watch_upgrade(world, "suspended")
    world.sim.advance(2 * STEP)
    world.poll_now("suspended")
    world.wait_status("suspended", phase="Running")
    world.patch_spec("suspended", suspend=True)
    world.wait_status(
        "suspended", observedGeneration=world.get("suspended")["metadata"]["generation"]
    )
    expect(world, gitops_oracle, "suspended", ("Suspended", "InProgress", "InProgress"))

    # A spec change before the next poll: until the operator has seen the new
    # generation, every reader waits. The poll that follows the change is held
    # back by the simulator for a while, so that state lasts long enough to judge.
    cluster = world.sim.add_cluster()
    world.create_watch("respec", cluster, pollInterval="1h")
    world.wait_condition("respec", "Ready", "True", "NoUpgrade")
    expect(world, gitops_oracle, "respec", HEALTHY)
    world.sim.add_fault("latency", clusterId=cluster, seconds=10, count=1)
    world.patch_spec("respec", pollInterval="2h")
    obj = expect(world, gitops_oracle, "respec", PROGRESSING)
    generation = obj["metadata"]["generation"]
    assert obj["status"]["observedGeneration"] < generation, obj["status"]
    judgement = gitops_oracle.judge(obj)
    assert (
        judgement.argocd.message == f"Waiting for the operator to observe generation {generation}"
    )
    world.wait_status("respec", observedGeneration=generation)
    expect(world, gitops_oracle, "respec", HEALTHY, argocd_message_from="Ready")


@pytest.fixture(scope="module")
def news(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    with news_simulator(tmp_path_factory.mktemp("news-simulator")) as process:
        yield process


def test_gating_on_the_lifecycle_conditions(
    world: World, gitops_oracle: GitOpsOracle, news: SimulatorProcess
) -> None:
    # A cluster with fatal pre-check findings, an automatic upgrade in two hours
    # and a patch waiting: GitOps tools still call it healthy (nothing runs,
    # nothing is stuck); the gates README shows read the lifecycle conditions.
    world.create_secret()
    world.create_watch("news", NEWS_CLUSTER, endpoint=news.url, lifecycle={})  # every part on
    world.wait_condition("news", "PreCheckPassed", "False", "FatalFindings", timeout=60)
    world.wait_condition("news", "UpgradeScheduled", "True", "StartsSoon")
    world.wait_condition("news", "UpToDate", "False", "PatchAvailable")
    world.wait_condition("news", "Ready", "True", "UpgradeCancelled")

    obj = expect(world, gitops_oracle, "news", HEALTHY)
    judgement = gitops_oracle.judge(obj)
    assert judgement.argocd.message == (
        f"{condition_message(obj, 'Ready')}; {condition_message(obj, 'UpgradeScheduled')}"
    )

    def waits(condition: str) -> bool:
        done = world.kubectl("wait", f"--for=condition={condition}", "cuw/news", "--timeout=0s",
                             check=False)  # fmt: skip
        return bool(done.returncode == 0)

    assert waits("PreCheckPassed=false")
    assert not waits("PreCheckPassed")
    assert waits("UpgradeScheduled")
    assert not waits("UpgradeScheduled=false")
    assert waits("UpToDate=False")

    # `-o wide` shows when the upgrade may start, as the time itself.
    header, row = world.kubectl("get", "cuw", "news", "-o", "wide").stdout.splitlines()
    assert header.rstrip().endswith("NEXT UPGRADE")
    assert row[header.index("NEXT UPGRADE") :].strip() == obj["status"]["nextUpgrade"]["notBefore"]
