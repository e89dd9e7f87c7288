"""Cloud API faults, injected by the simulator, against the real operator.

Expectations for every fault: the operator neither crashes nor stops polling;
`Synced` goes False with the fault's reason once two polls in a row failed (one
alone opens no episode: see tests/e2e/test_truth.py) and comes back; each failure episode
posts exactly one `PollFailed` Warning and one `PollRecovered`; a failed poll never
wipes the mirrored workflow from the status; and a throttled cluster is not asked
again before its `Retry-After`.

The module runs its own operator (the session's one is stopped meanwhile) with a
2 s CCE read timeout, so a read timeout costs seconds rather than 3 x 15 s.
Reproduce the figures in docs/RELIABILITY.md with
`.venv/bin/pytest tests/e2e/test_faults_cloud.py -rP | grep measured`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import (
    measured,
    metric_samples,
    metric_total,
    mirrored,
    new_events,
    request_count,
    request_times,
    swapped_operator,
    wait_for_next_poll,
    wait_for_requests,
)
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until
from tests.support.world import World

STEP = 1000.0  # scenario seconds per task state: nothing moves unless the test advances time
CCE_TIMEOUT = 2.0
ATTEMPTS = 3  # the operator's default --cce-attempts


@pytest.fixture(scope="module")
def fault_operator(
    control_plane: ControlPlane,
    crd: str,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    args = ("-A", "--max-initial-delay", "0s", "--secret-cache-ttl", "1h", "--cce-timeout", "2s")
    log = tmp_path_factory.mktemp("fault-operator") / "operator.log"
    with swapped_operator(operator, control_plane.operator_kubeconfig, log, args) as replacement:
        yield replacement


@pytest.fixture
def world(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    fault_operator: OperatorProcess,
    namespace: str,
) -> World:
    return World(control_plane, simulator, fault_operator, namespace)


def long_timeline(*tasks: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"task": t, "queue": STEP, "run": STEP} for t in tasks]
    steps[0]["wait"] = STEP
    return {"steps": steps}


def running_watch(world: World, name: str, **spec: Any) -> str:
    """A watch of a cluster whose upgrade sits in phase Init (polled every 5 s);
    returns the cluster id once the first poll is stored and announced."""
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.start_workflow(
        cluster, long_timeline("PreCheck", "Snapshot", "Cluster"), targetVersion="v1.29.1-r0"
    )
    world.create_secret()
    world.create_watch(name, cluster, activePollInterval="5s", **spec)
    world.wait_condition(name, "Synced", "True", "PollSucceeded")
    world.wait_status(name, phase="Init", progress="0/3")
    world.wait_events(name, 1)  # WorkflowDiscovered
    return cluster


def delete_fault(sim: SimulatorControl, fault_id: str) -> None:
    sim._call("DELETE", f"/faults/{fault_id}")


def list_faults(sim: SimulatorControl) -> list[dict[str, Any]]:
    faults: list[dict[str, Any]] = sim._call("GET", "/faults")["faults"]
    return faults


def assert_operator_alive(world: World) -> None:
    process = world.operator.process
    assert process is not None
    assert process.poll() is None, world.operator.log()[-3000:]


# ---------------------------------------------------------------- the fault matrix


@dataclass
class Case:
    """One watch of its own cluster, and the faults injected into its polls."""

    name: str
    faults: list[dict[str, Any]]
    #: The Synced=False reason of the episode, or None: no episode at all.
    reason: str | None = None
    words: str = ""
    requests_per_poll: int = ATTEMPTS
    cluster: str = ""
    before: dict[str, Any] = field(default_factory=dict)
    events_before: int = 0
    failing: dict[str, Any] = field(default_factory=dict)
    requests_at_injection: int = 0
    detected: float = 0.0
    recovered: float = 0.0


def fault_matrix() -> list[Case]:
    return [
        Case("error-503", [{"kind": "error", "status": 503}], "ApiUnavailable", "HTTP 503"),
        Case("dropped", [{"kind": "drop"}], "ApiUnavailable", "connection was dropped"),
        Case(
            "read-timeout",
            [{"kind": "latency", "seconds": CCE_TIMEOUT + 3}],
            "ApiUnavailable",
            "no complete answer within",
        ),
        # A 200 whose body is cut off mid-object is not retried: one request per poll.
        Case("malformed", [{"kind": "malformed"}], "InvalidResponse", "not JSON", 1),
        # The reason changes within the episode: 500, then malformed, then dropped.
        Case("mixed", [{"kind": "error", "status": 500}], "ApiUnavailable", "HTTP 500"),
        # Errors fewer than the client's attempts are retried away within one poll.
        Case(
            "burst",
            [
                {"kind": "error", "status": 503, "count": 1},
                {"kind": "error", "status": 500, "count": 1},
            ],
        ),
        # `items` as the doc's single object: no fault at all, the same status.
        Case("single-item", [{"kind": "single-item"}]),
        # 429s: within the client's limit, retried after Retry-After inside the poll
        # (3 attempts) and the poll loop waits again before the next poll (5 s after
        # its start, so sooner). Two whole polls' worth of 429s, then the answer.
        Case(
            "throttled",
            [{"kind": "throttle", "retryAfter": 4, "count": 2 * ATTEMPTS}],
            "Throttled",
            "HTTP 429",
        ),
        # Beyond the client's limit (20 s): given up at once, next poll rescheduled.
        # Two such polls in a row: one failed poll alone opens no episode.
        Case(
            "throttled-long",
            [{"kind": "throttle", "retryAfter": 21, "count": 2}],
            "Throttled",
            "HTTP 429",
            1,
        ),
    ]


def throttle_gaps(world: World, case: Case) -> list[float]:
    """The time from each of the case's 429s to the request after it, measured on the
    simulator's arrival times (the 429s are the first requests after injection)."""
    count = case.faults[0]["count"]
    times = request_times(world.sim, case.cluster)
    total = request_count(world.sim, case.cluster)
    first = len(times) - (total - case.requests_at_injection)
    window = times[first : first + count + 1]
    assert len(window) == count + 1, (first, total, times)
    return [later - earlier for earlier, later in itertools.pairwise(window)]


def watches(world: World) -> dict[str, dict[str, Any]]:
    """Every watch of the namespace, by name, in one request."""
    items = world.plane.kubectl_json("-n", world.namespace, "get", "cuw")["items"]
    return {item["metadata"]["name"]: item for item in items}


def condition_of(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


@pytest.mark.slow
def test_fault_matrix(world: World) -> None:
    """Every fault at once, each on a watch of its own (they run side by side to keep
    the suite short; the isolation test shows they do not disturb each other)."""
    cases = fault_matrix()
    world.create_secret()
    for case in cases:
        case.cluster = world.sim.add_cluster(version="v1.28.3-r0")
        world.sim.start_workflow(
            case.cluster,
            long_timeline("PreCheck", "Snapshot", "Cluster"),
            targetVersion="v1.29.1-r0",
        )
        world.create_watch(case.name, case.cluster, activePollInterval="5s")
    for case in cases:
        world.wait_condition(case.name, "Synced", "True", "PollSucceeded")
        case.before = world.wait_status(case.name, phase="Init", progress="0/3")
        case.events_before = len(world.wait_events(case.name, 1))  # WorkflowDiscovered

    injected = time.monotonic()
    for case in cases:
        case.requests_at_injection = request_count(world.sim, case.cluster)
        for fault in case.faults:
            world.sim.add_fault(clusterId=case.cluster, **fault)
    episodes = [case for case in cases if case.reason is not None]

    def all_failing() -> bool:
        objects = watches(world)
        for case in episodes:
            synced = condition_of(objects[case.name], "Synced")
            if not case.failing and synced.get("status") == "False":
                case.failing = synced
                case.detected = time.monotonic() - injected
        return all(case.failing for case in episodes)

    wait_until(
        all_failing, timeout=60, message=lambda: str([c.name for c in episodes if not c.failing])
    )
    for case in episodes:
        assert case.failing["reason"] == case.reason, (case.name, case.failing)
        assert case.words in case.failing["message"], (case.name, case.failing)

    # The mixed case: each next fault is added before the previous one goes, so no
    # poll can succeed in between; the reason changes, the episode goes on.
    mixed = next(case for case in cases if case.name == "mixed")
    previous = [f for f in list_faults(world.sim) if f["clusterId"] == mixed.cluster]
    for kind, reason in (("malformed", "InvalidResponse"), ("drop", "ApiUnavailable")):
        following = world.sim.add_fault(kind, clusterId=mixed.cluster)
        for fault in previous:
            delete_fault(world.sim, fault["id"])
        previous = [following]
        world.wait_condition("mixed", "Synced", "False", reason, timeout=40)

    # Every failing watch goes on polling: one more whole failing poll each.
    lasting = [case for case in episodes if not case.name.startswith("throttled")]
    targets = {
        case.name: request_count(world.sim, case.cluster) + case.requests_per_poll
        for case in lasting
    }
    wait_until(
        lambda: all(request_count(world.sim, c.cluster) >= targets[c.name] for c in lasting),
        timeout=40,
        message="a failing watch stopped polling",
    )
    objects = watches(world)
    for case in cases:
        status = objects[case.name]["status"]
        assert mirrored(status) == mirrored(case.before), case.name  # never wiped
        if case in lasting:
            synced = condition_of(objects[case.name], "Synced")
            assert synced["status"] == "False", case.name
            assert synced["lastTransitionTime"] == case.failing["lastTransitionTime"], case.name
            assert condition_of(objects[case.name], "Stalled")["status"] == "False", case.name
            assert condition_of(objects[case.name], "Ready")["reason"] == synced["reason"]
        if case.reason is None:  # absorbed or harmless: as if nothing happened
            assert status == case.before, case.name
            assert len(world.event_summaries(case.name)) == case.events_before, case.name
    assert world.sim.requests(mixed.cluster)["statuses"].get("500", 0) >= ATTEMPTS
    burst = next(case for case in cases if case.name == "burst")
    assert world.sim.requests(burst.cluster)["statuses"]["503"] == 1
    assert world.sim.requests(burst.cluster)["statuses"]["500"] == 1

    cleared = time.monotonic()
    for case in lasting:
        world.sim.clear_faults(case.cluster)

    def all_recovered() -> bool:
        objects = watches(world)
        for case in episodes:
            synced = condition_of(objects[case.name], "Synced")
            if not case.recovered and synced.get("status") == "True":
                case.recovered = time.monotonic() - (cleared if case in lasting else injected)
        return all(case.recovered for case in episodes)

    wait_until(
        all_recovered,
        timeout=60,
        message=lambda: str([c.name for c in episodes if not c.recovered]),
    )
    for case in episodes:
        events = new_events(world, case.name, case.events_before, 2)
        assert [(kind, why) for kind, why, _ in events] == [
            ("Warning", "PollFailed"),
            ("Normal", "PollRecovered"),
        ], (case.name, events)
        assert f"({case.reason})" in events[0][2], (case.name, events)
        assert mirrored(world.status(case.name)) == mirrored(case.before), case.name
        world.wait_condition(case.name, "Reconciling", "False", "UpgradeNotStarted")

    # Retry-After, on the simulator's clock: no request before the delay was over.
    gaps = throttle_gaps(world, next(c for c in cases if c.name == "throttled"))
    assert len(gaps) == 2 * ATTEMPTS
    assert min(gaps) >= 4.0, gaps
    long_gaps = throttle_gaps(world, next(c for c in cases if c.name == "throttled-long"))
    assert len(long_gaps) == 2
    assert min(long_gaps) >= 21.0, long_gaps

    # A further poll of each changes nothing: the episode's two Events stay the only ones.
    targets = {case.name: request_count(world.sim, case.cluster) + 1 for case in episodes}
    wait_until(
        lambda: all(request_count(world.sim, c.cluster) >= targets[c.name] for c in episodes),
        timeout=30,
        message="no further poll",
    )
    for case in cases:
        expected = case.events_before + (2 if case.reason else 0)
        assert len(world.event_summaries(case.name)) == expected, case.name
    assert_operator_alive(world)

    for case in lasting:
        measured(
            f"fault {case.name}",
            {
                "reason": case.reason,
                "detected_s": round(case.detected, 1),
                "recovered_s": round(case.recovered, 1),
            },
        )
    measured("429 Retry-After 4s: gap after each 429 (s)", [round(g, 2) for g in gaps])
    measured("429 Retry-After 21s: gap to the next request (s)", [round(g, 2) for g in long_gaps])


# ---------------------------------------------------------------- odd answers


def test_unknown_phase_and_task_values_are_mirrored_verbatim(world: World) -> None:
    cluster = running_watch(world, "unknown")
    events_before = len(world.event_summaries("unknown"))
    world.sim.force(cluster, task="PreCheck", status="Verifying")
    world.sim.force(cluster, phase="Suspended")
    world.poll_now("unknown")
    status = world.wait_status("unknown", phase="Suspended")
    assert status["pointStatuses"][0]["status"] == "Verifying"
    world.wait_condition("unknown", "Synced", "True", "PollSucceeded")
    world.wait_condition("unknown", "Reconciling", "False", "UpgradeNotRunning")
    world.wait_condition("unknown", "Ready", "True", "UpgradeIdle")
    events = new_events(world, "unknown", events_before, 2)
    assert ("Normal", "TaskStatusChanged", "PreCheck: Init -> Verifying") in events, events
    assert ("Normal", "PhaseChanged", "Init -> Suspended (v1.28.3-r0 -> v1.29.1-r0)") in events
    phases = {
        labels["phase"]: value
        for labels, value in metric_samples(world.operator, "cceupgradewatch_workflow_phase")
        if labels.get("namespace") == world.namespace
    }
    # Metric labels from the cloud are bounded (issue 11.4): an unknown phase is `Other`.
    assert phases["Other"] == 1.0
    assert "Suspended" not in phases
    assert phases["Init"] == 0.0
    # Back to a known phase: followed as usual.
    world.sim.force(cluster, phase="Running")
    world.poll_now("unknown")
    world.wait_condition("unknown", "Reconciling", "True", "UpgradeRunning", timeout=20)
    assert_operator_alive(world)


class ScriptedEndpoint(ThreadingHTTPServer):
    """A stand-in for the API that answers every GET with `body` (any JSON, or bytes)."""

    body: Any = None
    requests = 0


class _Answer(BaseHTTPRequestHandler):
    server: ScriptedEndpoint

    def do_GET(self) -> None:  # the name http.server calls
        self.server.requests += 1
        body = self.server.body
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted_endpoint() -> Iterator[ScriptedEndpoint]:
    server = ScriptedEndpoint(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _answered(world: World, endpoint: ScriptedEndpoint, name: str) -> None:
    """Poll now and wait until that poll was answered and its outcome stored."""
    seen = endpoint.requests
    world.poll_now(name)
    wait_until(lambda: endpoint.requests > seen, timeout=20, message="no poll came")


DROPPED_FIELDS = "cceupgradewatch_dropped_fields_total"

COMPLETE = {
    "kind": "List",
    "items": [
        {
            "metadata": {"uid": "wf-1", "creationTimestamp": "2024-01-01 00:00:00 +0000 UTC"},
            "spec": {"clusterVersion": "v1.28.3-r0", "targetVersion": "v1.29.1-r0"},
            "status": {
                "phase": "Running",
                "pointStatuses": [{"taskType": "PreCheck", "status": "Running"}],
            },
        }
    ],
}


def test_missing_and_null_fields_are_tolerated(
    world: World, scripted_endpoint: ScriptedEndpoint
) -> None:
    world.create_secret()
    scripted_endpoint.body = {"items": [{"status": {"phase": "Running"}}]}  # no metadata, spec
    world.create_watch(
        "sparse",
        "0b3c4a7e-5f1d-4c8e-9a1b-2c3d4e5f6a7b",
        endpoint=f"http://127.0.0.1:{scripted_endpoint.server_address[1]}",
        pollInterval="1h",
        activePollInterval="1h",
    )
    status = world.wait_status("sparse", phase="Running")
    assert "workflowID" not in status
    assert "clusterVersion" not in status
    world.wait_condition("sparse", "Synced", "True", "PollSucceeded")
    world.wait_condition("sparse", "Reconciling", "True", "UpgradeRunning")

    # Nulls and empty strings where objects and values belong; tasks with only a name.
    scripted_endpoint.body = {
        "kind": "List",
        "items": [
            {
                "metadata": None,
                "spec": {"clusterVersion": "", "targetVersion": None},
                "status": {
                    "phase": "Running",
                    "pointStatuses": [{"taskType": "PreCheck"}, {}, None, {"status": "Running"}],
                    "lineStatuses": [{"startPoint": None, "endPoint": {}, "critical": ""}],
                },
            },
            {},
            None,
        ],
    }
    _answered(world, scripted_endpoint, "sparse")
    status = world.wait_status("sparse", progress="0/2")
    assert status["pointStatuses"] == [{"taskType": "PreCheck"}, {"status": "Running"}]
    world.wait_condition("sparse", "Synced", "True", "PollSucceeded")

    # An informational field that cannot be read (a task's status of the wrong type, a
    # time in epoch seconds) is left out and counted; the poll still works.
    dropped_before = metric_total(world.operator, DROPPED_FIELDS, field="startTimeStamp")
    scripted_endpoint.body = {
        "items": [
            {
                "status": {
                    "phase": "Running",
                    "pointStatuses": [
                        {"taskType": "PreCheck", "status": ["x"], "startTimeStamp": "1700815155"},
                        {"taskType": "Cluster"},
                    ],
                }
            }
        ]
    }
    _answered(world, scripted_endpoint, "sparse")
    status = world.wait_status(
        "sparse", pointStatuses=[{"taskType": "PreCheck"}, {"taskType": "Cluster"}]
    )
    world.wait_condition("sparse", "Synced", "True", "PollSucceeded")
    wait_until(
        lambda: (
            metric_total(world.operator, DROPPED_FIELDS, field="startTimeStamp") > dropped_before
        ),
        timeout=10,
        message="the dropped field was not counted",
    )
    assert "left out unreadable fields" in world.operator.log()

    # A field the status cannot do without (the phase) of the wrong type is an invalid
    # answer: the stored status stays.
    kept = mirrored(status)
    # One such answer is held (it may be a glitch); the second in a row is reported.
    scripted_endpoint.body = {"items": [{"status": {"phase": ["Running"]}}]}
    _answered(world, scripted_endpoint, "sparse")
    _answered(world, scripted_endpoint, "sparse")
    failing = world.wait_condition("sparse", "Synced", "False", "InvalidResponse")
    assert "status.phase" in failing["message"], failing["message"]
    assert mirrored(world.status("sparse")) == kept

    scripted_endpoint.body = COMPLETE
    _answered(world, scripted_endpoint, "sparse")
    world.wait_status("sparse", workflowID="wf-1", clusterVersion="v1.28.3-r0", progress="0/1")
    world.wait_condition("sparse", "Synced", "True", "PollSucceeded")
    reasons = [why for _, why, _ in world.event_summaries("sparse")]
    assert reasons.count("PollFailed") == 1
    assert reasons.count("PollRecovered") == 1
    assert_operator_alive(world)


def test_a_huge_answer_is_cut_to_what_the_crd_accepts(
    world: World, scripted_endpoint: ScriptedEndpoint
) -> None:
    """Issue 11.4: the models cut lists at 64 items and strings at 256 characters, and
    the CRD's status schema has the same `maxItems` / `maxLength`: the real API server
    stores the cut status, which says how much was left out."""
    world.create_secret()
    points = [
        {"taskType": f"T{index:03d}" + "x" * 300, "taskID": f"id-{index}", "status": "Success"}
        for index in range(500)
    ]
    scripted_endpoint.body = {
        "kind": "List",
        "items": [
            {
                "metadata": {"uid": "u" * 1000, "creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"clusterVersion": "v" * 1000, "targetVersion": "v1.29.1-r0"},
                "status": {
                    "phase": "Success",
                    "pointStatuses": points,
                    "lineStatuses": [{"critical": True}] * 100,
                },
            }
        ],
    }
    world.create_watch(
        "huge",
        "0b3c4a7e-5f1d-4c8e-9a1b-2c3d4e5f6a7b",
        endpoint=f"http://127.0.0.1:{scripted_endpoint.server_address[1]}",
        pollInterval="1h",
    )
    status = world.wait_status("huge", pointStatusesOmitted=500 - 64, lineStatusesOmitted=36)
    world.wait_condition("huge", "Synced", "True", "PollSucceeded")
    assert len(status["pointStatuses"]) == 64
    assert len(status["lineStatuses"]) == 64
    assert len(status["workflowID"]) == 256
    assert len(status["clusterVersion"]) == 256
    assert all(len(point["taskType"]) == 256 for point in status["pointStatuses"])
    assert status["progress"] == "64/64"
    size = len(json.dumps(world.get("huge")))
    measured("object of a 500-task answer as stored", {"bytes": size})


# ---------------------------------------------------------------- a restart mid-episode


def test_restart_during_an_episode_posts_no_second_warning(world: World) -> None:
    cluster = running_watch(world, "restarted")
    wait_for_next_poll(world.sim, cluster)
    world.sim.add_fault("error", clusterId=cluster, status=503)
    world.wait_condition("restarted", "Synced", "False", "ApiUnavailable")
    world.wait_events("restarted", 2)  # WorkflowDiscovered, PollFailed

    world.operator.kill()
    world.sim.advance(STEP)  # PreCheck queues while no operator runs
    world.operator.start()
    # Polls after the restart fail too; the stored status says the episode goes on.
    wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + ATTEMPTS)
    world.sim.clear_faults(cluster)
    world.wait_status("restarted", currentTask="PreCheck", phase="Running", timeout=30)
    world.wait_condition("restarted", "Synced", "True", "PollSucceeded")
    events = world.wait_events("restarted", 5)
    reasons = [why for _, why, _ in events]
    assert reasons.count("PollFailed") == 1, events
    assert reasons.count("PollRecovered") == 1, events
    assert ("Normal", "TaskStatusChanged", "PreCheck: Init -> Queuing") in events
    assert len(events) == len(set(events)), events
