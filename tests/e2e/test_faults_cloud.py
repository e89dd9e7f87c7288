"""Cloud API faults, injected by the simulator, against the real operator.

Expectations for every fault: the operator neither crashes nor stops polling;
`Synced` goes False with the fault's reason and comes back; each failure episode
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import (
    measured,
    metric_samples,
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


def synced(world: World, name: str) -> dict[str, Any]:
    condition = world.condition(name, "Synced")
    assert condition is not None
    return condition


def delete_fault(sim: SimulatorControl, fault_id: str) -> None:
    sim._call("DELETE", f"/faults/{fault_id}")


def assert_operator_alive(world: World) -> None:
    process = world.operator.process
    assert process is not None
    assert process.poll() is None, world.operator.log()[-3000:]


# ---------------------------------------------------------------- one episode per fault

FAULTS = [
    pytest.param({"kind": "error", "status": 503}, "ApiUnavailable", "503", ATTEMPTS, id="503"),
    pytest.param({"kind": "drop"}, "ApiUnavailable", "connection failed", ATTEMPTS, id="dropped"),
    pytest.param(
        {"kind": "latency", "seconds": CCE_TIMEOUT + 3},
        "ApiUnavailable",
        "no answer in time (ReadTimeout)",
        ATTEMPTS,
        id="read-timeout",
    ),
    # A 200 with a body cut off mid-object is not retried: one request per poll.
    pytest.param({"kind": "malformed"}, "InvalidResponse", "not JSON", 1, id="malformed-json"),
]  # fmt: skip


@pytest.mark.parametrize(("fault", "reason", "words", "requests_per_poll"), FAULTS)
def test_fault_is_one_episode_and_keeps_the_workflow(
    world: World, fault: dict[str, Any], reason: str, words: str, requests_per_poll: int
) -> None:
    cluster = running_watch(world, "faulty")
    before = world.status("faulty")
    events_before = len(world.event_summaries("faulty"))

    world.sim.add_fault(clusterId=cluster, **fault)  # until cleared
    injected = time.monotonic()
    failing = world.wait_condition("faulty", "Synced", "False", reason, timeout=40)
    detected = time.monotonic() - injected
    assert words in failing["message"], failing["message"]
    # The operator keeps polling: at least one more whole failing poll, still one episode.
    wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + requests_per_poll)
    during = world.status("faulty")
    assert mirrored(during) == mirrored(before)  # the workflow is never wiped
    assert synced(world, "faulty")["lastTransitionTime"] == failing["lastTransitionTime"]
    world.wait_condition("faulty", "Ready", "False", reason)
    world.wait_condition("faulty", "Stalled", "False")  # retrying can fix it: no person needed

    world.sim.clear_faults(cluster)
    cleared = time.monotonic()
    world.wait_condition("faulty", "Synced", "True", "PollSucceeded", timeout=30)
    recovered = time.monotonic() - cleared
    world.wait_condition("faulty", "Reconciling", "True", "UpgradeRunning")

    events = new_events(world, "faulty", events_before, 2)
    assert [(kind, why) for kind, why, _ in events] == [
        ("Warning", "PollFailed"),
        ("Normal", "PollRecovered"),
    ], events
    assert f"({reason})" in events[0][2]
    assert mirrored(world.status("faulty")) == mirrored(before)
    assert_operator_alive(world)
    measured(
        f"{fault['kind']} {fault.get('status', '')}".strip(),
        {"detected_s": round(detected, 1), "recovered_s": round(recovered, 1)},
    )


def test_short_error_burst_is_absorbed_by_retries(world: World) -> None:
    cluster = running_watch(world, "burst")
    synced_before = synced(world, "burst")
    events_before = world.event_summaries("burst")
    start = wait_for_next_poll(world.sim, cluster)
    # The next poll gets a 503, then a 500, then the answer: all within its attempts.
    world.sim.add_fault("error", clusterId=cluster, status=503, count=1)
    world.sim.add_fault("error", clusterId=cluster, status=500, count=1)
    wait_for_requests(world.sim, cluster, start + ATTEMPTS)
    wait_for_next_poll(world.sim, cluster)  # that poll is stored by now
    assert world.sim.requests(cluster)["statuses"]["503"] == 1
    assert world.sim.requests(cluster)["statuses"]["500"] == 1
    assert synced(world, "burst") == synced_before
    assert world.event_summaries("burst") == events_before


def test_changing_faults_in_one_episode_post_one_warning(world: World) -> None:
    cluster = running_watch(world, "mixed")
    before = world.status("mixed")
    events_before = len(world.event_summaries("mixed"))

    current = world.sim.add_fault("error", clusterId=cluster, status=500)
    first = world.wait_condition("mixed", "Synced", "False", "ApiUnavailable")
    # Each next fault is added before the previous one goes: no poll can succeed between.
    for kind, reason in (("malformed", "InvalidResponse"), ("drop", "ApiUnavailable")):
        following = world.sim.add_fault(kind, clusterId=cluster)
        delete_fault(world.sim, current["id"])
        current = following
        world.wait_condition("mixed", "Synced", "False", reason, timeout=40)
        wait_for_next_poll(world.sim, cluster)
    assert synced(world, "mixed")["lastTransitionTime"] == first["lastTransitionTime"]
    assert mirrored(world.status("mixed")) == mirrored(before)
    world.sim.clear_faults(cluster)
    world.wait_condition("mixed", "Synced", "True", "PollSucceeded")
    events = new_events(world, "mixed", events_before, 2)
    assert [why for _, why, _ in events] == ["PollFailed", "PollRecovered"], events
    assert "(it failed with ApiUnavailable)" in events[1][2]
    # A further poll changes nothing: the episode's two Events stay the only ones.
    wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + 1)
    assert len(world.event_summaries("mixed")) == events_before + 2


# ---------------------------------------------------------------- throttling


def throttled_gaps(world: World, cluster: str, retry_after: int, count: int) -> list[float]:
    """Inject `count` 429s with `Retry-After: retry_after` just after a poll, wait for
    the first answered request after them; return the gaps from each 429 to the next
    request, measured on the simulator's arrival times."""
    start = wait_for_next_poll(world.sim, cluster)
    world.sim.add_fault("throttle", clusterId=cluster, retryAfter=retry_after, count=count)
    world.wait_condition("throttled", "Synced", "False", "Throttled", timeout=retry_after + 20)
    # `count` throttled requests, then one that got through.
    wait_for_requests(
        world.sim, cluster, start + count + 1, timeout=(count + 2) * (retry_after + 6)
    )
    world.wait_condition("throttled", "Synced", "True", "PollSucceeded", timeout=20)
    times = request_times(world.sim, cluster)
    total = request_count(world.sim, cluster)
    first = len(times) - (total - start)  # index of the first throttled request
    window = times[first : first + count + 1]
    return [later - earlier for earlier, later in itertools.pairwise(window)]


def test_retry_after_is_honoured_within_and_between_polls(world: World) -> None:
    cluster = running_watch(world, "throttled")
    events_before = len(world.event_summaries("throttled"))
    # 4 s: within the client's limit, so it retries inside the poll (3 attempts), and
    # the poll loop waits the 4 s again before the next poll, whose start is due sooner
    # (activePollInterval 5s).
    gaps = throttled_gaps(world, cluster, retry_after=4, count=2 * ATTEMPTS)
    assert len(gaps) == 2 * ATTEMPTS
    assert min(gaps) >= 4.0, gaps
    events = new_events(world, "throttled", events_before, 2)
    assert [why for _, why, _ in events] == ["PollFailed", "PollRecovered"], events
    assert "(Throttled)" in events[0][2]
    assert_operator_alive(world)
    measured("429 Retry-After 4s, gaps after each 429 (s)", [round(g, 2) for g in gaps])


@pytest.mark.slow
def test_retry_after_beyond_the_client_limit_reschedules_the_poll(world: World) -> None:
    cluster = running_watch(world, "throttled")
    # 21 s is more than the client waits within a poll (20 s): it gives up at once
    # and the poll loop schedules the next poll no earlier than that.
    gaps = throttled_gaps(world, cluster, retry_after=21, count=1)
    assert len(gaps) == 1
    assert gaps[0] >= 21.0, gaps
    measured("429 Retry-After 21s, gap to the next request (s)", round(gaps[0], 2))


# ---------------------------------------------------------------- odd answers


def test_items_as_a_single_object_reads_the_same(world: World) -> None:
    cluster = running_watch(world, "single")
    before = world.status("single")
    events_before = world.event_summaries("single")
    start = wait_for_next_poll(world.sim, cluster)
    fault = world.sim.add_fault("single-item", clusterId=cluster)
    world.poll_now("single")  # no need to wait for the schedule
    wait_for_requests(world.sim, cluster, start + 2)  # two polls answered that way
    assert world.status("single") == before
    assert world.event_summaries("single") == events_before
    delete_fault(world.sim, fault["id"])


def test_unknown_phase_and_task_values_are_mirrored_verbatim(world: World) -> None:
    cluster = running_watch(world, "unknown")
    events_before = len(world.event_summaries("unknown"))
    world.sim.force(cluster, task="PreCheck", status="Verifying")
    world.sim.force(cluster, phase="Suspended")
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
    assert phases["Suspended"] == 1.0
    assert phases["Init"] == 0.0
    # Back to a known phase: followed as usual.
    world.sim.force(cluster, phase="Running")
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

    # A field of the wrong type is an invalid answer: the stored status stays.
    kept = mirrored(status)
    scripted_endpoint.body = {"items": [{"status": {"pointStatuses": [{"status": ["x"]}]}}]}
    _answered(world, scripted_endpoint, "sparse")
    failing = world.wait_condition("sparse", "Synced", "False", "InvalidResponse")
    assert "pointStatuses" in failing["message"], failing["message"]
    assert mirrored(world.status("sparse")) == kept

    scripted_endpoint.body = COMPLETE
    _answered(world, scripted_endpoint, "sparse")
    world.wait_status("sparse", workflowID="wf-1", clusterVersion="v1.28.3-r0", progress="0/1")
    world.wait_condition("sparse", "Synced", "True", "PollSucceeded")
    reasons = [why for _, why, _ in world.event_summaries("sparse")]
    assert reasons.count("PollFailed") == 1
    assert reasons.count("PollRecovered") == 1
    assert_operator_alive(world)


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
    wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + 2 * ATTEMPTS)
    world.sim.clear_faults(cluster)
    world.wait_status("restarted", currentTask="PreCheck", phase="Running", timeout=30)
    world.wait_condition("restarted", "Synced", "True", "PollSucceeded")
    events = world.wait_events("restarted", 5)
    reasons = [why for _, why, _ in events]
    assert reasons.count("PollFailed") == 1, events
    assert reasons.count("PollRecovered") == 1, events
    assert ("Normal", "TaskStatusChanged", "PreCheck: Init -> Queuing") in events
    assert len(events) == len(set(events)), events
