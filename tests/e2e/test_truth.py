"""The status tells the truth on a real control plane (issue #10): Events exactly
once across SIGKILLs, Init is not an upgrade in progress, the active workflow is
the current one, a vanished workflow is believed only when a second answer
agrees, another cluster gets a new mirror, one dropped answer opens no failure
episode, and a status the API server refuses becomes `Synced=False`.

Real kube-apiserver, real simulator process, real operator processes, kubectl.
Reproduce the exactly-once figure in docs/RELIABILITY.md with
`.venv/bin/pytest tests/e2e/test_truth.py -k exactly_once -rP | grep measured`.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cce_upgrade_watch.kubeapi import KILL_AFTER_EVENTS_ENV
from tests.support.controlplane import ControlPlane
from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import measured, request_count, wait_for_requests
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until
from tests.support.world import World

STEP = 1000.0  # scenario seconds per state: nothing moves unless the test advances time
ATTEMPTS = 3  # the operator's default --cce-attempts: requests in one failed poll
TASKS = ("PreCheck", "Snapshot", "Cluster", "PostCheck")


def timeline(*tasks: str, fail: str | None = None, wait: float = STEP) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for task in tasks:
        step: dict[str, Any] = {"task": task, "queue": STEP, "run": STEP}
        if task == fail:
            step["outcome"] = "Failed"
        steps.append(step)
    steps[0]["wait"] = wait
    return {"steps": steps}


# ---------------------------------------------------------------- 1. exactly once


class Operators:
    """Operator processes started one after another, each with its own fault hook."""

    def __init__(self, plane: ControlPlane, directory: Path) -> None:
        self.plane = plane
        self.directory = directory
        self.started = 0

    def run_until_killed(self, kill_after_events: int, timeout: float = 90) -> None:
        """Start one that SIGKILLs itself after its N-th Event create call; wait for it."""
        process = self._process({KILL_AFTER_EVENTS_ENV: str(kill_after_events)})
        # It may die before its liveness endpoint ever answered: that is the point.
        with contextlib.suppress(AssertionError):
            process.start()
        assert process.process is not None
        wait_until(
            lambda: process.process is not None and process.process.poll() is not None,
            timeout=timeout,
            message=lambda: f"the operator was never killed; log:\n{process.log()[-3000:]}",
        )
        assert process.process.returncode == -9, process.log()[-3000:]

    def start(self) -> OperatorProcess:
        process = self._process({})
        process.start()
        return process

    def _process(self, env: dict[str, str]) -> OperatorProcess:
        self.started += 1
        return OperatorProcess(
            self.plane.operator_kubeconfig,
            self.directory / f"operator-{self.started}.log",
            args=("-A", "--max-initial-delay", "0s", "--secret-cache-ttl", "1h"),
            env=env,
        )


@pytest.fixture
def operators(
    control_plane: ControlPlane, operator: OperatorProcess, tmp_path: Path
) -> Iterator[Operators]:
    """The session's operator is stopped meanwhile (it would poll the same objects)."""
    operator.stop()
    try:
        yield Operators(control_plane, tmp_path)
    finally:
        operator.start()


def test_events_exactly_once_when_killed_between_events_and_status(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    operator: OperatorProcess,
    operators: Operators,
    namespace: str,
) -> None:
    world = World(control_plane, simulator, operator, namespace)
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.start_workflow(cluster, timeline(*TASKS, fail="PreCheck"))
    world.sim.advance(3 * STEP)  # PreCheck queued, ran and failed before anyone looked
    world.create_secret()
    world.create_watch("once", cluster)

    # The first poll owes three Events (the workflow is discovered already failed),
    # then the status write. Kill the operator after each of them, start it again.
    owed = 3
    for kill_after in range(1, owed + 1):
        operators.run_until_killed(kill_after)
        assert "phase" not in world.status("once"), "the status was written before its Events"
        assert len(world.events("once")) == kill_after
    survivor = operators.start()
    world.wait_status("once", phase="Pending")

    # A second transition, killed between its Event and its status write.
    survivor.kill()
    world.sim.force(cluster, phase="Cancel")
    operators.run_until_killed(1)
    assert world.status("once")["phase"] == "Pending"
    survivor = operators.start()
    world.wait_status("once", phase="Cancel")
    wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + 2)

    events = world.events("once")
    summaries = [(e["type"], e["reason"], e["message"]) for e in events]
    counts = Counter(summaries)
    assert summaries == [
        (
            "Normal",
            "WorkflowDiscovered",
            summaries[0][2],
        ),
        ("Warning", "TaskStatusChanged", "PreCheck: (none) -> Failed"),
        ("Warning", "PhaseChanged", "(none) -> Pending (v1.28.3-r0 -> v1.29.1-r0)"),
        ("Warning", "PhaseChanged", "Pending -> Cancel (v1.28.3-r0 -> v1.29.1-r0)"),
    ], summaries
    assert set(counts.values()) == {1}
    uid = world.get("once")["metadata"]["uid"]
    for event in events:
        assert event["metadata"]["name"].startswith("once.")
        assert event["involvedObject"]["uid"] == uid
        assert event["involvedObject"]["kind"] == "CceUpgradeWatch"
        assert event["source"]["component"] == "cce-upgrade-watch"
        assert event["reportingComponent"] == "cce-upgrade-watch"
        assert event["count"] == 1
    # `kubectl describe` and `kubectl events --for` show them as kopf's own Events.
    described = world.kubectl("describe", "cuw", "once").stdout
    assert "PreCheck: (none) -> Failed" in described
    listed = world.kubectl("events", "--for", "cceupgradewatch/once").stdout
    assert "Pending -> Cancel" in listed
    survivor.stop()
    measured(
        "events exactly once across SIGKILLs",
        {
            "kill_points": owed + 1,
            "events": len(events),
            "copies_each": sorted(set(counts.values())),
        },
    )


# ---------------------------------------------------------------- 4. Init


def test_init_is_ready_and_polled_closely(world: World) -> None:
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.start_workflow(cluster, timeline(*TASKS, wait=100 * STEP))
    world.create_secret()
    world.create_watch("idle-init", cluster, pollInterval="1h", activePollInterval="5s")
    world.wait_status("idle-init", phase="Init")
    # `kubectl wait` returns on a workflow that sits in Init: nothing runs.
    waited = world.kubectl("wait", "--for=condition=Ready", "cuw/idle-init", "--timeout=60s")
    assert waited.returncode == 0
    world.wait_condition("idle-init", "Reconciling", "False", "UpgradeNotStarted")
    assert world.condition("idle-init", "Ready")["reason"] == "UpgradeNotStarted"  # type: ignore[index]
    # Still polled at activePollInterval (not the hour): the start shows up quickly.
    world.sim.advance(100 * STEP)
    world.wait_status("idle-init", phase="Running", currentTask="PreCheck", timeout=30)
    world.wait_condition("idle-init", "Reconciling", "True", "UpgradeRunning")


# ---------------------------------------------------------------- 6. the active workflow


def test_the_active_workflow_stays_current_beside_a_newer_init_one(world: World) -> None:
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    active = world.sim.start_workflow(cluster, timeline(*TASKS, fail="PreCheck"))
    world.sim.advance(STEP)  # PreCheck queues: Running
    newer = world.sim.start_workflow(
        cluster, timeline(*TASKS, wait=100 * STEP), targetVersion="v1.30.0-r0"
    )
    world.create_secret()
    world.create_watch("active", cluster)
    status = world.wait_status("active", workflowID=active["metadata"]["uid"], phase="Running")
    assert [entry["workflowID"] for entry in status["history"]] == [newer["metadata"]["uid"]]

    world.sim.advance(2 * STEP)  # the active one's PreCheck fails: Pending
    world.wait_status("active", workflowID=active["metadata"]["uid"], phase="Pending")
    world.wait_condition("active", "Stalled", "True", "TaskFailed")
    world.wait_condition("active", "Ready", "False", "TaskFailed")
    warnings = [e for e in world.event_summaries("active") if e[0] == "Warning"]
    assert ("Warning", "PhaseChanged", "Running -> Pending (v1.28.3-r0 -> v1.29.1-r0)") in (
        warnings
    )


# ---------------------------------------------------------------- 7. vanished workflows


def test_a_workflow_gone_from_one_answer_is_kept_and_from_two_is_gone(world: World) -> None:
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.start_workflow(cluster, timeline(*TASKS))
    world.sim.advance(STEP)  # Running
    world.create_secret()
    world.create_watch("vanish", cluster, activePollInterval="5s")
    before = world.wait_status("vanish", phase="Running")
    world.wait_events("vanish", 1)

    # One glitchy empty answer: the status and conditions stay, no Event.
    fault = world.sim.add_fault("empty-list", clusterId=cluster, count=1)
    seen = wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + 2)
    assert seen >= 2
    faults = world.sim._call("GET", "/faults")["faults"]
    assert fault["id"] not in [f["id"] for f in faults]  # it was served
    assert world.status("vanish") == before
    assert [e[1] for e in world.event_summaries("vanish")] == ["WorkflowDiscovered"]

    # Gone for good: believed at the second answer, with a WorkflowGone Event.
    world.sim.add_fault("empty-list", clusterId=cluster)
    status = world.wait_status("vanish", phase=None, timeout=30)
    assert "workflowID" not in status
    world.wait_condition("vanish", "Ready", "True", "NoUpgrade")
    gone = [e for e in world.event_summaries("vanish") if e[1] == "WorkflowGone"]
    assert len(gone) == 1
    assert gone[0][0] == "Normal"
    assert before["workflowID"] in gone[0][2]
    world.sim.clear_faults(cluster)


# ---------------------------------------------------------------- 8. another cluster


def test_another_cluster_gets_a_new_mirror(world: World) -> None:
    first = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.start_workflow(first, timeline(*TASKS))
    world.sim.advance(STEP)
    world.create_secret()
    world.create_watch("moved", first)
    world.wait_status("moved", phase="Running")
    assert world.status("moved")["watched"]["clusterId"] == first

    # A cluster that does not exist: the old mirror goes at once, Synced=False.
    missing = "00000000-0000-4000-8000-000000000000"
    world.patch_spec("moved", clusterId=missing)
    generation = world.get("moved")["metadata"]["generation"]
    status = world.wait_status("moved", observedGeneration=generation)
    for key in ("phase", "workflowID", "pointStatuses", "history", "currentVersion"):
        assert key not in status, key
    assert status["watched"]["clusterId"] == missing
    world.wait_condition("moved", "Synced", "False", "ClusterNotFound")

    second = world.sim.add_cluster(version="v1.27.4-r0")
    workflow = world.sim.start_workflow(second, timeline("PreCheck"), targetVersion="v1.28.3-r0")
    world.patch_spec("moved", clusterId=second)
    world.wait_status("moved", workflowID=workflow["metadata"]["uid"])
    world.wait_condition("moved", "Synced", "True", "PollSucceeded")
    reasons = [e[1] for e in world.event_summaries("moved")]
    assert "WorkflowGone" not in reasons  # the old cluster's workflow did not vanish
    assert reasons.count("WorkflowDiscovered") == 2


# ---------------------------------------------------------------- 9. someone else's edit


def test_a_status_edited_by_someone_else_is_corrected_at_the_next_poll(world: World) -> None:
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.start_workflow(cluster, timeline(*TASKS))
    world.sim.advance(STEP)
    world.create_secret()
    world.create_watch("edited", cluster, activePollInterval="5s")
    world.wait_status("edited", phase="Running", currentTask="PreCheck")
    forged = {"status": {"phase": "Success", "currentTask": "Forged"}}
    world.kubectl(
        "patch", "cuw", "edited", "--subresource=status", "--type=merge", "-p", json.dumps(forged)
    )
    world.wait_status("edited", phase="Running", currentTask="PreCheck", timeout=30)


# ---------------------------------------------------------------- 10. flapping


def test_one_failed_poll_opens_no_episode_two_in_a_row_do(world: World) -> None:
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.create_secret()
    world.create_watch("flaky", cluster, activePollInterval="5s", pollInterval="10s")
    world.wait_condition("flaky", "Ready", "True", "NoUpgrade")
    before = world.status("flaky")

    # Every attempt of one poll fails (dropped connections), the next poll works.
    world.sim.add_fault("drop", clusterId=cluster, count=ATTEMPTS)
    wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + ATTEMPTS + 1)
    assert world.status("flaky") == before
    assert world.event_summaries("flaky") == []

    # Two polls in a row fail: one PollFailed, then one PollRecovered.
    world.sim.add_fault("error", clusterId=cluster, status=503, count=2 * ATTEMPTS)
    wait_until(
        lambda: [e[1] for e in world.event_summaries("flaky")] == ["PollFailed", "PollRecovered"],
        timeout=60,
        message=lambda: f"events: {world.event_summaries('flaky')}",
    )
    failed = world.event_summaries("flaky")[0]
    assert failed[0] == "Warning"
    assert "(ApiUnavailable)" in failed[2]
    world.wait_condition("flaky", "Synced", "True", "PollSucceeded")


# ---------------------------------------------------------------- #11.4 a refused status


def test_a_status_the_api_server_refuses_becomes_synced_false(
    world: World, control_plane: ControlPlane
) -> None:
    """A ValidatingAdmissionPolicy on this namespace refuses statuses with more
    than three tasks (422 Invalid), as the API server refuses one that breaks the
    schema or etcd's size limit: the operator says so through a minimal write, and
    does not retry the same answer."""
    policy = f"refuse-big-status-{world.namespace}"
    control_plane.kubectl("label", "namespace", world.namespace, f"truth-test={world.namespace}")
    control_plane.apply(
        json.dumps(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": ["cce.upgradewatch.io"],
                                "apiVersions": ["*"],
                                "operations": ["UPDATE"],
                                "resources": ["cceupgradewatches/status"],
                            }
                        ]
                    },
                    "validations": [
                        {
                            "expression": "!has(object.status.pointStatuses) || "
                            "size(object.status.pointStatuses) <= 3",
                            "message": "status.pointStatuses: at most 3 items",
                            "reason": "Invalid",
                        }
                    ],
                },
            }
        )
    )
    control_plane.apply(
        json.dumps(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": policy},
                "spec": {
                    "policyName": policy,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {"matchLabels": {"truth-test": world.namespace}}
                    },
                },
            }
        )
    )
    try:
        _wait_until_enforced(world)
        cluster = world.sim.add_cluster(version="v1.28.3-r0")
        world.sim.start_workflow(cluster, timeline(*TASKS))
        world.create_secret()
        world.create_watch("refused", cluster, activePollInterval="5s")
        failing = world.wait_condition("refused", "Synced", "False", "InvalidResponse", timeout=40)
        assert "at most 3 items" in failing["message"], failing
        status = world.status("refused")
        assert "pointStatuses" not in status  # the minimal write: conditions only
        reasons = [e[1] for e in world.event_summaries("refused")]
        assert reasons.count("PollFailed") == 1, reasons

        # The same answer again and again: not written again and again.
        writes = _refused_writes(control_plane, world.namespace)
        wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + 3, timeout=40)
        assert _refused_writes(control_plane, world.namespace) == writes
    finally:
        control_plane.kubectl("delete", "validatingadmissionpolicybinding", policy, check=False)
        control_plane.kubectl("delete", "validatingadmissionpolicy", policy, check=False)

    # A new answer after the policy is gone is written in full.
    world.sim.advance(STEP)
    world.wait_condition("refused", "Synced", "True", "PollSucceeded", timeout=40)
    world.wait_status("refused", phase="Running", progress="0/4")
    measured("status refused by the API server: refused writes", writes)


def _refused_writes(plane: ControlPlane, namespace: str) -> int:
    return sum(
        1
        for event in plane.audit_events()
        if event.get("objectRef", {}).get("namespace") == namespace
        and event.get("objectRef", {}).get("subresource") == "status"
        and event.get("responseStatus", {}).get("code") == 422
    )


def _wait_until_enforced(world: World) -> None:
    """A policy is enforced a moment after it is created: probe it with a status
    write of our own on a suspended watch (which the operator leaves alone)."""
    world.create_watch("probe", "00000000-0000-4000-8000-000000000001", suspend=True)
    big = json.dumps({"status": {"pointStatuses": [{}, {}, {}, {}]}})

    def refused() -> bool:
        result = world.kubectl(
            "patch", "cuw", "probe", "--subresource=status", "--type=merge", "-p", big,
            check=False,
        )  # fmt: skip
        return result.returncode != 0 and "at most 3 items" in result.stderr

    wait_until(refused, timeout=30, message="the admission policy was never enforced")
