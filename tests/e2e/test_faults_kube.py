"""Kubernetes faults: the kube-apiserver crashes and stays down for 30 s, etcd crashes
and restarts, each in the middle of an upgrade.

They break a control plane, so this module runs on one of its own (with its own
operator; the session's simulator is shared). The upgrade moves on in the cloud
while Kubernetes is away. Afterwards the status matches the simulator's final
state, no Event was posted twice, no task transition is missing, and the operator
process never restarted.
Reproduce: `.venv/bin/pytest tests/e2e/test_faults_kube.py -rP | grep measured`.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import (
    PrivateControlPlane,
    measured,
    private_control_plane,
    request_count,
    wait_for_requests,
)
from tests.support.simulator import SimulatorControl
from tests.support.world import World

STEP = 1000.0
TASKS = ("PreCheck", "Snapshot", "Cluster", "PostCheck")
OUTAGE = 30.0  # seconds the kube-apiserver stays down

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateControlPlane]:
    with private_control_plane(tmp_path_factory.mktemp("faultplane")) as plane:
        yield plane


@pytest.fixture(scope="module")
def kube_operator(
    plane: PrivateControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("kube-fault-operator") / "operator.log"
    args = ("-A", "--max-initial-delay", "0s", "--secret-cache-ttl", "1h")
    process = OperatorProcess(plane.operator_kubeconfig, log, args=args)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def world(
    plane: PrivateControlPlane, simulator: SimulatorControl, kube_operator: OperatorProcess
) -> World:
    namespace = f"kube-faults-{uuid.uuid4().hex[:6]}"
    plane.kubectl("create", "namespace", namespace)
    return World(plane, simulator, kube_operator, namespace)


def long_timeline(*tasks: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"task": t, "queue": STEP, "run": STEP} for t in tasks]
    steps[0]["wait"] = STEP
    return {"steps": steps}


def upgrade_under_way(world: World, name: str) -> str:
    """A watch whose upgrade has PreCheck done and Snapshot queued (4 Events so far)."""
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.start_workflow(cluster, long_timeline(*TASKS), targetVersion="v1.29.1-r0")
    world.create_secret()
    world.create_watch(name, cluster)  # activePollInterval 5s
    world.wait_status(name, phase="Init")
    world.sim.advance(3 * STEP)
    world.wait_status(name, currentTask="Snapshot", progress="1/4")
    world.wait_events(name, 4)
    return cluster


def finish_and_check(world: World, name: str, cluster: str) -> None:
    """Run the upgrade to its end; check status and Events against the simulator."""
    world.sim.advance(6 * STEP)
    status = world.wait_status(name, phase="Success", progress="4/4", timeout=60)
    events = world.wait_events(name, 9, timeout=30)
    duplicates = [event for event, count in Counter(events).items() if count > 1]
    assert duplicates == [], events
    assert [message for _, why, message in events if why == "TaskStatusChanged"] == [
        "PreCheck: Init -> Success",
        "Snapshot: Init -> Queuing",
        # Kubernetes was away here; the cloud moved on.
        "Snapshot: Queuing -> Success",
        "Cluster: Init -> Queuing",
        "Cluster: Queuing -> Success",
        "PostCheck: Init -> Success",
    ], events
    assert [why for _, why, _ in events].count("PhaseChanged") == 2, events
    assert len(events) == 9, events

    cloud = world.sim.show(cluster)["items"][-1]
    assert status["phase"] == cloud["status"]["phase"]
    assert status["workflowID"] == cloud["metadata"]["uid"]
    assert status["clusterVersion"] == cloud["spec"]["clusterVersion"]
    assert status["targetVersion"] == cloud["spec"]["targetVersion"]
    assert [(p["taskType"], p["status"]) for p in status["pointStatuses"]] == [
        (p["taskType"], p["status"]) for p in cloud["status"]["pointStatuses"]
    ]
    world.wait_condition(name, "Ready", "True", "UpgradeSucceeded")


def assert_never_restarted(world: World, pid: int) -> None:
    process = world.operator.process
    assert process is not None
    assert process.pid == pid
    assert process.poll() is None, world.operator.log()[-3000:]


def test_apiserver_down_for_30s_mid_upgrade(world: World, plane: PrivateControlPlane) -> None:
    assert world.operator.process is not None
    pid = world.operator.process.pid
    cluster = upgrade_under_way(world, "outage")

    plane.stop_component("apiserver")  # SIGKILL: a crash
    stopped = time.monotonic()
    world.sim.advance(2 * STEP)  # Snapshot succeeds and Cluster queues, unseen by Kubernetes
    # The operator keeps polling the cloud while its status writes fail.
    polls_down = wait_for_requests(
        world.sim, cluster, request_count(world.sim, cluster) + 3, timeout=OUTAGE
    )
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))  # the outage lasts 30 s
    plane.start_component("apiserver")
    restarted = time.monotonic()
    world.wait_status("outage", currentTask="Cluster", progress="2/4", timeout=60)
    caught_up = time.monotonic() - restarted

    finish_and_check(world, "outage", cluster)
    assert_never_restarted(world, pid)
    assert polls_down >= 3
    measured(
        "kube-apiserver down 30 s",
        {"status_caught_up_after_restart_s": round(caught_up, 1)},
    )


def test_etcd_restarted_mid_upgrade(world: World, plane: PrivateControlPlane) -> None:
    assert world.operator.process is not None
    pid = world.operator.process.pid
    cluster = upgrade_under_way(world, "etcd")

    plane.stop_component("etcd")  # SIGKILL: a crash
    world.sim.advance(2 * STEP)
    # At least one poll while etcd is away (the apiserver cannot store its write).
    wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + 1, timeout=30)
    plane.start_component("etcd")
    restarted = time.monotonic()
    world.wait_status("etcd", currentTask="Cluster", progress="2/4", timeout=90)
    caught_up = time.monotonic() - restarted

    finish_and_check(world, "etcd", cluster)
    assert_never_restarted(world, pid)
    measured("etcd restarted", {"status_caught_up_after_restart_s": round(caught_up, 1)})
