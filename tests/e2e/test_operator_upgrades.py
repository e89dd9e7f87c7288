"""The operator mirrors upgrades into status, conditions, columns and Events.

Real control plane, real simulator process, real operator process, built kubectl.
Simulator time is moved explicitly (`advance`), so every state of a workflow is
held long enough to be seen, whatever the machine's speed.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

from tests.support.waiting import wait_until
from tests.support.world import World

STEP = 1000.0  # scenario seconds per state: far longer than a test runs in real time


def timeline(*tasks: str, fail: str | None = None, rollback: bool = False) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for index, task in enumerate(tasks):
        step: dict[str, Any] = {"task": task, "queue": STEP, "run": STEP}
        if index == 0:
            step["wait"] = STEP
        if task == fail:
            step["outcome"] = "Failed"
        steps.append(step)
    if rollback:
        steps.append({"task": "Rollback", "wait": STEP, "queue": STEP, "run": STEP})
    return {"steps": steps}


FOUR_TASKS = ("PreCheck", "Snapshot", "Cluster", "PostCheck")


def task_states(status: dict[str, Any]) -> dict[str, str]:
    return {p["taskType"]: p.get("status", "") for p in status.get("pointStatuses", [])}


def test_success_upgrade_status_columns_events_and_wait(world: World) -> None:
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    workflow = world.sim.start_workflow(cluster, timeline(*FOUR_TASKS), targetVersion="v1.29.1-r0")
    world.create_secret()
    world.create_watch("prod", cluster)

    status = world.wait_status("prod", phase="Init")
    assert status["workflowID"] == workflow["metadata"]["uid"]
    assert status["clusterVersion"] == "v1.28.3-r0"
    assert status["targetVersion"] == "v1.29.1-r0"
    assert status["progress"] == "0/4"
    assert task_states(status) == dict.fromkeys(FOUR_TASKS, "Init")
    assert [(line["startPoint"]["taskType"], line["endPoint"]["taskType"])
            for line in status["lineStatuses"]] == [
        ("PreCheck", "Snapshot"), ("Snapshot", "Cluster"), ("Cluster", "PostCheck"),
    ]  # fmt: skip
    assert all(isinstance(line["critical"], bool) for line in status["lineStatuses"])
    generation = world.get("prod")["metadata"]["generation"]
    assert status["observedGeneration"] == generation
    # Init: no task runs yet, which is no upgrade in progress (a workflow may sit
    # in Init for days); tests/e2e/test_truth.py shows `kubectl wait` returning.
    world.wait_condition("prod", "Reconciling", "False", "UpgradeNotStarted")
    world.wait_condition("prod", "Ready", "True", "UpgradeNotStarted")
    world.sim.advance(STEP)  # PreCheck queues: now the upgrade is under way
    world.wait_status("prod", currentTask="PreCheck", progress="0/4", phase="Running")
    world.wait_condition("prod", "Reconciling", "True", "UpgradeRunning")
    world.wait_condition("prod", "Ready", "False", "UpgradeRunning")

    # `kubectl wait` blocks while the upgrade runs and returns once it succeeded.
    waiter = subprocess.Popen(
        [str(world.plane.bin_dir / "kubectl"), "--kubeconfig", str(world.plane.kubeconfig),
         "-n", world.namespace, "wait", "--for=condition=Ready", "cuw/prod", "--timeout=300s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        expected_progress = [
            # (task, its status, succeeded tasks) after each step of simulated time
            ("PreCheck", "Running", 0),
            ("Snapshot", "Queuing", 1), ("Snapshot", "Running", 1),
            ("Cluster", "Queuing", 2), ("Cluster", "Running", 2),
            ("PostCheck", "Queuing", 3), ("PostCheck", "Running", 3),
        ]  # fmt: skip
        for task, task_status, done in expected_progress:
            world.sim.advance(STEP)
            status = world.wait_status("prod", currentTask=task, progress=f"{done}/4")
            wait_until(
                lambda: task_states(world.status("prod"))[task] == task_status,  # noqa: B023
                timeout=30, message=f"{task} never became {task_status}",
            )  # fmt: skip
            assert status["phase"] == "Running"
            assert waiter.poll() is None, "kubectl wait returned while the upgrade runs"
            if (task, task_status) == ("Cluster", "Running"):
                columns_mid_upgrade = world.kubectl("get", "cuw", "prod", "-o", "wide").stdout
        world.sim.advance(STEP)
        status = world.wait_status("prod", phase="Success", progress="4/4")
        assert waiter.wait(timeout=60) == 0, waiter.stderr.read() if waiter.stderr else ""
    finally:
        if waiter.poll() is None:
            waiter.kill()

    # Every status field, as the contract names them.
    assert "currentTask" not in status
    assert task_states(status) == dict.fromkeys(FOUR_TASKS, "Success")
    rfc3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    for point in status["pointStatuses"]:
        assert point["taskID"]
        assert rfc3339.match(point["startTimeStamp"]), point
        assert rfc3339.match(point["endTimeStamp"]), point
    assert rfc3339.match(status["lastChangeTime"])
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "True", "UpgradeSucceeded",
    )  # fmt: skip
    assert conditions["Synced"]["status"] == "True"
    assert conditions["Reconciling"]["status"] == "False"
    assert conditions["Stalled"]["status"] == "False"
    assert all(c["observedGeneration"] == generation for c in conditions.values())

    # The printed columns: mid-upgrade (-o wide) and at the end.
    header, row = columns_mid_upgrade.splitlines()
    assert header.split() == [
        "NAME", "PHASE", "CURRENT", "TARGET", "TASK", "PROGRESS", "READY", "AGE",
        "CLUSTER", "LAST", "CHANGE", "NEXT", "UPGRADE",
    ]  # fmt: skip
    assert row.split()[:7] == ["prod", "Running", "v1.28.3-r0", "v1.29.1-r0", "Cluster", "2/4",
                               "False"]  # fmt: skip
    assert cluster in row.split()
    header, row = world.kubectl("get", "cuw").stdout.splitlines()
    assert header.split() == [
        "NAME", "PHASE", "CURRENT", "TARGET", "TASK", "PROGRESS", "READY", "AGE",
    ]  # fmt: skip
    # CURRENT: after Success the cluster runs the target version.
    assert row.split()[:4] == ["prod", "Success", "v1.29.1-r0", "v1.29.1-r0"]
    assert (status["clusterVersion"], status["currentVersion"]) == ("v1.28.3-r0", "v1.29.1-r0")
    assert "4/4" in row.split()
    assert "True" in row.split()

    # Events, in order, each transition exactly once.
    transitions = [
        f"{task}: {before} -> {after}"
        for task in FOUR_TASKS
        for before, after in (("Init", "Queuing"), ("Queuing", "Running"), ("Running", "Success"))
    ]
    expected = [("Normal", "WorkflowDiscovered"), ("Normal", "PhaseChanged")]
    expected += [("Normal", "TaskStatusChanged")] * len(transitions)
    expected += [("Normal", "PhaseChanged")]
    events = world.wait_events("prod", len(expected))
    assert [(kind, reason) for kind, reason, _ in events] == expected, events
    assert [message for _, reason, message in events if reason == "TaskStatusChanged"] == (
        transitions
    )
    assert events[1][2].startswith("Init -> Running")
    assert events[-1][2] == "Running -> Success (v1.28.3-r0 -> v1.29.1-r0)"


def test_precheck_failure_stalls_with_warnings(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.sim.start_workflow(cluster, timeline(*FOUR_TASKS, fail="PreCheck"))
    world.create_secret()
    world.create_watch("failing", cluster)
    world.wait_status("failing", phase="Init")
    world.sim.advance(3 * STEP)  # queued, ran, failed
    world.poll_now("failing")
    status = world.wait_status("failing", phase="Pending")
    assert status["currentTask"] == "PreCheck"
    assert task_states(status)["PreCheck"] == "Failed"
    world.wait_condition("failing", "Stalled", "True", "TaskFailed")
    world.wait_condition("failing", "Ready", "False", "TaskFailed")
    warnings = [e for e in world.wait_events("failing", 3) if e[0] == "Warning"]
    assert ("Warning", "TaskStatusChanged", "PreCheck: Init -> Failed") in warnings
    assert any(reason == "PhaseChanged" and "-> Pending" in message
               for _, reason, message in warnings), warnings  # fmt: skip


def test_cancelled_upgrade_is_ready_and_warns(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.sim.start_workflow(cluster, timeline(*FOUR_TASKS, fail="PreCheck"))
    world.create_secret()
    world.create_watch("cancelled", cluster)
    world.wait_status("cancelled", phase="Init")
    world.sim.advance(3 * STEP)
    world.sim.force(cluster, phase="Cancel")
    world.poll_now("cancelled")
    world.wait_status("cancelled", phase="Cancel")
    world.wait_condition("cancelled", "Ready", "True", "UpgradeCancelled")
    assert world.condition("cancelled", "Stalled")["status"] == "False"  # type: ignore[index]
    events = world.wait_events("cancelled", 3)
    assert any(kind == "Warning" and reason == "PhaseChanged" and "-> Cancel" in message
               for kind, reason, message in events), events  # fmt: skip


def test_rollback_path_is_mirrored(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.sim.start_workflow(cluster, timeline(*FOUR_TASKS, fail="Cluster", rollback=True))
    world.create_secret()
    world.create_watch("rollback", cluster)
    world.wait_status("rollback", phase="Init")
    world.sim.advance(7 * STEP)  # through PreCheck, Snapshot and the failed Cluster task
    world.poll_now("rollback")
    status = world.wait_status("rollback", phase="Pending", currentTask="Cluster")
    assert "Rollback" not in task_states(status)  # shown only once it starts
    world.wait_condition("rollback", "Stalled", "True", "TaskFailed")
    world.sim.advance(STEP)  # the Rollback task queues
    world.poll_now("rollback")
    status = world.wait_status("rollback", currentTask="Rollback", phase="Running")
    assert task_states(status)["Rollback"] == "Queuing"
    world.sim.advance(2 * STEP)
    world.poll_now("rollback")
    wait_until(
        lambda: task_states(world.status("rollback")).get("Rollback") == "Success",
        timeout=30, message="the rollback never succeeded in status",
    )  # fmt: skip
    status = world.status("rollback")
    assert task_states(status)["Cluster"] == "Failed"
    assert status["phase"] == "Pending"
    reasons = [(reason, message) for _, reason, message in world.event_summaries("rollback")]
    assert ("TaskStatusChanged", "Rollback: (none) -> Queuing") in reasons, reasons
    assert ("TaskStatusChanged", "Rollback: Queuing -> Success") in reasons, reasons


def test_newer_workflow_moves_the_old_one_to_history(world: World) -> None:
    cluster = world.sim.add_cluster()
    first = world.sim.start_workflow(cluster, timeline("PreCheck"))
    world.sim.force(cluster, phase="Success")
    world.create_secret()
    world.create_watch("history", cluster, historyLimit=1)
    world.wait_status("history", phase="Success", workflowID=first["metadata"]["uid"])
    second = world.sim.start_workflow(cluster, timeline("PreCheck"), targetVersion="v1.30.0-r0")
    world.poll_now("history")
    status = world.wait_status("history", workflowID=second["metadata"]["uid"])
    assert status["targetVersion"] == "v1.30.0-r0"
    assert [entry["workflowID"] for entry in status["history"]] == [first["metadata"]["uid"]]
    assert status["history"][0]["phase"] == "Success"
    assert "createdAt" in status["history"][0]
