"""Before and after the workflow, on a real control plane (issue #12).

The simulator's `lifecycle` scenario at time scale 6 (scenario seconds / 6 =
real seconds), read by real operator processes, checked with kubectl:

- 0 s: a pre-check failed (Fatal: a deprecated API, a node); a patch plan for
  600 s, a newer patch suggested -> `PreCheckFailed`, `PreCheckPassed=False`,
  `UpgradeScheduled`, `PatchAvailable`;
- 50 s: the plan is postponed to 150 s (plans are read every 2 h: not seen yet);
- 67 s: the failed workflow is cancelled (findings fixed): a workflow ended, so
  the plans are read again -> `UpgradeRescheduled`;
- 90 s: nothing new in the cloud, the lead time of 60 s begins -> `UpgradeSoon`;
- 150 s: the plan runs, its pre-check passes with a warning -> `PreCheckPassed`;
- 160 s: its Snapshot task backs the control plane up -> `BackupCompleted`;
- 184 s: the cluster runs the suggested patch -> `UpgradeUnscheduled`,
  `UpToDate=True`.

The operator is SIGKILLed between the `UpgradeSoon` Event and the status write
that records it, and replaced: every Event still exists exactly once. The
simulator counts the requests per call: the lifecycle calls are made when they
can tell something new, not at every poll. A 403 or 404 of one call leaves its
section empty with one Normal Event, and the watch Ready and Synced. At the end,
the lifecycle metrics are what the status says.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cce_upgrade_watch.kubeapi import KILL_AFTER_EVENTS_ENV
from cce_upgrade_watch.simulator import DEMO_ACCESS_KEY, DEMO_CLUSTER_ID, DEMO_SECRET_KEY
from tests.e2e.test_metrics import value
from tests.support.controlplane import ControlPlane
from tests.support.operatorprocess import OperatorProcess
from tests.support.simulator import SimulatorControl, SimulatorProcess
from tests.support.waiting import wait_until
from tests.support.world import World

TIME_SCALE = 6.0
LEAD_TIME = "1m"
WATCH = "story"

# What the scenario does, in scenario seconds (simulator/scenarios/lifecycle.yaml).
CANCELLED_AT = 400
RUNS_AT = 900
BACKED_UP_AT = 959
LIFECYCLE_REASONS = (
    "PreCheckFailed",
    "UpgradeScheduled",
    "PatchAvailable",
    "UpgradeRescheduled",
    "UpgradeSoon",
    "PreCheckPassed",
    "BackupCompleted",
    "UpgradeUnscheduled",
)


class Operators:
    """Operator processes for the test's namespace only, one after another."""

    def __init__(self, plane: ControlPlane, directory: Path, namespace: str) -> None:
        self.plane = plane
        self.directory = directory
        self.namespace = namespace
        self.started: list[OperatorProcess] = []

    def start(self, env: dict[str, str] | None = None) -> OperatorProcess:
        process = OperatorProcess(
            self.plane.operator_kubeconfig,
            self.directory / f"operator-{len(self.started) + 1}.log",
            args=("-n", self.namespace, "--max-initial-delay", "0s"),
            env=env or {},
        )
        self.started.append(process)
        process.start()
        return process

    def start_to_be_killed(self, kill_after_events: int) -> OperatorProcess:
        """One that SIGKILLs itself after its N-th Event create call."""
        process = OperatorProcess(
            self.plane.operator_kubeconfig,
            self.directory / f"operator-{len(self.started) + 1}.log",
            args=("-n", self.namespace, "--max-initial-delay", "0s"),
            env={KILL_AFTER_EVENTS_ENV: str(kill_after_events)},
        )
        self.started.append(process)
        with contextlib.suppress(AssertionError):  # it may die before it is live
            process.start()
        return process

    def logs(self) -> str:
        return "\n".join(p.log()[-2000:] for p in self.started)

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


@pytest.fixture
def story_simulator(tmp_path: Path) -> Iterator[tuple[SimulatorProcess, SimulatorControl]]:
    (tmp_path / "sim").mkdir()
    process = SimulatorProcess(tmp_path / "sim", scenario="lifecycle", time_scale=TIME_SCALE)
    process.start()
    control = SimulatorControl(process.url)
    try:
        yield process, control
    finally:
        control.close()
        process.stop()


@pytest.fixture
def operators(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> Iterator[Operators]:
    """The session's operator is stopped meanwhile (it would poll the same object)."""
    operator.stop()
    started = Operators(control_plane, tmp_path, namespace)
    try:
        yield started
    finally:
        started.stop_all()
        operator.start()


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in status.get("conditions") or [] if c.get("type") == kind]
    return found[0] if found else {}


def reasons(world: World) -> list[str]:
    return [e["reason"] for e in world.events(WATCH)]


def wait_event(world: World, operators: Operators, reason: str, timeout: float) -> None:
    wait_until(
        lambda: reason in reasons(world),
        timeout=timeout,
        message=lambda: f"no {reason} Event; Events: {reasons(world)}\n{operators.logs()}",
    )


def scenario_time(started_at: float, seconds: float) -> datetime:
    return datetime.fromtimestamp(started_at + seconds / TIME_SCALE, UTC)


def test_the_upgrade_lifecycle_story_with_a_restart(
    control_plane: ControlPlane,
    operators: Operators,
    story_simulator: tuple[SimulatorProcess, SimulatorControl],
    namespace: str,
    tmp_path: Path,
) -> None:
    _, sim = story_simulator
    started_at = float(sim.state()["startedAt"])
    first = operators.start()
    world = World(control_plane, sim, first, namespace)
    world.create_secret()
    world.create_watch(WATCH, DEMO_CLUSTER_ID, lifecycle={"upgradeSoonLeadTime": LEAD_TIME})

    # Before: the failed pre-check as a to-do list, the plan, the patch, the backup.
    world.kubectl("wait", "--for=condition=UpgradeScheduled", f"cuw/{WATCH}", "--timeout=60s")
    wait_until(
        lambda: (s := world.status(WATCH)).get("preCheck") and s.get("versions") and s,
        timeout=30,
        message=lambda: json.dumps(world.status(WATCH)),
    )
    status = world.status(WATCH)
    precheck = status["preCheck"]
    assert (precheck["phase"], precheck["fatal"], precheck["warning"], precheck["info"]) == (
        "Failed", 2, 1, 1,
    )  # fmt: skip
    top = precheck["findings"][0]
    assert (top["level"], top["kind"], top["name"]) == ("Fatal", "Exception", "DeprecatedAPICheck")
    assert top["riskSource"]["deprecatedAPIs"][0]["url"].startswith(
        "/apis/flowcontrol.apiserver.k8s.io/v1beta2/"
    )
    assert condition(status, "PreCheckPassed")["status"] == "False"
    assert condition(status, "PreCheckPassed")["reason"] == "FatalFindings"
    plan = status["nextUpgrade"]
    assert plan["targetVersion"] == "v1.28.3-r1"
    first_not_before = plan["notBefore"]
    assert plan["maintenanceWindow"]["weeklyPeriod"] == "Saturday,Sunday"
    assert (status["versions"]["patch"], status["versions"]["suggestedPatch"]) == ("r0", "r1")
    assert condition(status, "UpToDate")["status"] == "False"
    old_backup = status["lastBackupTime"]
    # The lifecycle conditions stand beside the four kstatus ones, which keep their meaning.
    assert condition(status, "Synced")["status"] == "True"
    describe = world.kubectl("describe", "cuw", WATCH).stdout
    print("kubectl describe cuw (before):\n" + describe)
    (tmp_path / "describe-before.txt").write_text(describe)
    assert "DeprecatedAPICheck" in describe

    # The failed workflow is cancelled: a workflow ended, so the plans are read again.
    wait_event(world, operators, "UpgradeRescheduled", timeout=120)
    rescheduled = world.status(WATCH)["nextUpgrade"]["notBefore"]
    assert rescheduled != first_not_before
    assert condition(world.status(WATCH), "UpgradeScheduled")["reason"] == "Scheduled"

    # Killed after the UpgradeSoon Event, before the status write that records it.
    first.kill()
    doomed = operators.start_to_be_killed(1)
    wait_until(
        lambda: doomed.process is not None and doomed.process.poll() is not None,
        timeout=90,
        message=lambda: f"the operator was never killed; log:\n{doomed.log()[-3000:]}",
    )
    assert doomed.process is not None
    assert doomed.process.returncode == -9, doomed.log()[-3000:]
    assert reasons(world).count("UpgradeSoon") == 1
    assert condition(world.status(WATCH), "UpgradeScheduled")["reason"] == "Scheduled"
    survivor = operators.start()
    world.operator = survivor
    world.wait_condition(WATCH, "UpgradeScheduled", "True", reason="StartsSoon", timeout=60)
    # Posted at its moment (time alone moved it: no new answer), not before.
    soon = next(e for e in world.events(WATCH) if e["reason"] == "UpgradeSoon")
    posted = datetime.fromisoformat(soon["metadata"]["creationTimestamp"])
    due = datetime.fromisoformat(rescheduled) - timedelta(minutes=1)
    assert posted >= due - timedelta(seconds=1), (posted, due)  # API server time: whole seconds
    print(f"measured: UpgradeSoon due {due.isoformat()}, posted {posted.isoformat()}")

    # The plan runs: its pre-check passes, the backup moves, the patch is installed.
    wait_until(
        lambda: (
            condition(s := world.status(WATCH), "UpToDate").get("status") == "True"
            and s.get("phase") == "Success"
        ),
        timeout=240,
        message=lambda: f"{json.dumps(world.status(WATCH))}\n{operators.logs()}",
    )
    wait_event(world, operators, "UpgradeUnscheduled", timeout=60)
    status = world.status(WATCH)
    assert status["preCheck"]["phase"] == "Success"
    assert status["preCheck"]["fatal"] == 0
    assert condition(status, "PreCheckPassed")["status"] == "True"
    assert status["versions"]["patch"] == "r1"
    assert status["lastBackupTime"] != old_backup
    backed_up = datetime.fromisoformat(status["lastBackupTime"])
    assert abs(backed_up - scenario_time(started_at, BACKED_UP_AT)) < timedelta(seconds=1)
    assert condition(status, "UpgradeScheduled")["status"] == "False"
    assert condition(status, "Ready")["status"] == "True"
    assert "targetVersion" not in (status.get("nextUpgrade") or {})

    # The metrics say what the status says (scraped from the operator that wrote it).
    labels = {"namespace": namespace, "name": WATCH}

    def metrics() -> dict[str, float | None]:
        return {
            "fatal": value(world, "cceupgradewatch_precheck_findings", level="Fatal", **labels),
            "patch": value(world, "cceupgradewatch_patch_available", **labels),
            "backup": value(world, "cceupgradewatch_last_backup_timestamp_seconds", **labels),
            "next": value(world, "cceupgradewatch_next_upgrade_timestamp_seconds", **labels),
        }

    expected = {"fatal": 0.0, "patch": 0.0, "backup": backed_up.timestamp(), "next": None}
    wait_until(
        lambda: metrics() == expected, timeout=15,
        message=lambda: f"metrics {metrics()} are not the status' {expected}",
    )  # fmt: skip

    # Every Event exactly once, across the kill.
    events = world.events(WATCH)
    counted = Counter(e["reason"] for e in events)
    assert {reason: counted[reason] for reason in LIFECYCLE_REASONS} == dict.fromkeys(
        LIFECYCLE_REASONS, 1
    ), [(e["reason"], e["message"]) for e in events]
    assert all(e.get("count", 1) == 1 for e in events)
    summaries = [(e["reason"], e["message"]) for e in events]
    assert len(summaries) == len(set(summaries)), summaries
    assert soon["type"] == "Warning"

    # The cost: lifecycle calls when they can tell something new, not every poll.
    calls = sim.requests(DEMO_CLUSTER_ID)["byOperation"]
    print(f"measured: requests by operation over the story: {calls}")
    polls = calls["list_workflows"]
    assert polls >= 25
    # Plans, window, versions: the first poll and each of the two workflow ends; the
    # snapshots: the first poll and the Snapshot point's end. Each of the two
    # restarted operators may add one: it asks a part it finds stored at an offset
    # within the part's interval (derived from the object's uid), rarely this soon.
    assert calls.get("list_plans", 0) <= 3 + 2
    assert calls.get("show_window", 0) <= 3 + 2
    assert calls.get("show_upgrade_info", 0) <= 3 + 2
    assert calls.get("list_snapshots", 0) <= 2 + 2
    prechecks = calls.get("show_precheck", 0) + calls.get("list_prechecks", 0)
    assert 2 <= prechecks <= 7  # the old task once, the new one as its point moved
    lifecycle_calls = sum(n for op, n in calls.items() if op != "list_workflows")
    assert lifecycle_calls < polls


@pytest.mark.parametrize(
    ("fault", "api", "part", "section"),
    [
        ({"kind": "error", "status": 403, "errorCode": "CCE.03400001"}, "plans", "plans", None),
        ({"kind": "api-not-published"}, "snapshots", "backups", "lastBackupTime"),
    ],
)
def test_a_call_this_region_or_identity_cannot_make_leaves_only_its_part_empty(
    world: World, fault: dict[str, Any], api: str, part: str, section: str | None
) -> None:
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.add_fault(clusterId=cluster, api=api, **fault)
    world.create_secret()
    world.create_watch("partial", cluster, lifecycle={})  # every part on, as by default
    world.wait_condition("partial", "Ready", "True", timeout=60)
    wait_until(
        lambda: "LifecycleUnavailable" in [e["reason"] for e in world.events("partial")],
        timeout=60,
        message=lambda: f"{world.event_summaries('partial')}",
    )
    status = world.status("partial")
    assert status["lifecycle"][part]["state"] == "Unavailable"
    assert condition(status, "Synced")["status"] == "True"
    assert condition(status, "Stalled").get("status") != "True"
    assert status.get("versions")  # the other parts are there
    if section is not None:
        assert section not in status
    else:
        assert "targetVersion" not in (status.get("nextUpgrade") or {})
    # Asked again (a poll-now asks every part): still once.
    before = world.sim.requests(cluster)["byApi"].get(api, 0)
    world.poll_now("partial")
    wait_until(
        lambda: world.sim.requests(cluster)["byApi"].get(api, 0) > before,
        timeout=30,
        message="the poll-now did not ask the part again",
    )
    world.wait_condition("partial", "Synced", "True", timeout=30)
    unavailable = [e for e in world.events("partial") if e["reason"] == "LifecycleUnavailable"]
    assert len(unavailable) == 1
    assert unavailable[0]["type"] == "Normal"
    assert DEMO_SECRET_KEY not in unavailable[0]["message"]
    assert DEMO_ACCESS_KEY not in unavailable[0]["message"]
