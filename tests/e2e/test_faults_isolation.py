"""Isolation: one cluster's endpoint hangs and another is throttled, while 50 other
watches keep their poll schedule.

The session operator runs with its defaults here (a 15 s read timeout, 3 attempts,
32 requests in flight), so the hung cluster holds a connection for 45 s per poll.
The drift of the others is measured on the simulator: the gap between consecutive
requests for one cluster, minus its `pollInterval`.
Reproduce: `.venv/bin/pytest tests/e2e/test_faults_isolation.py -rP | grep measured`.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest

from cce_upgrade_watch.simulator import DEMO_PROJECT_ID
from tests.support.reliability import measured, percentile, request_count
from tests.support.waiting import wait_until
from tests.support.world import World

HEALTHY = 50
INTERVAL = 10.0  # seconds: the smallest pollInterval the CRD allows
WINDOW = 60.0  # seconds of schedule observed, about 6 polls per watch


@pytest.mark.slow
def test_a_hung_and_a_throttled_cluster_do_not_delay_the_others(world: World) -> None:
    sim = world.sim
    added = sim._call("POST", "/clusters", json={"count": HEALTHY, "projectId": DEMO_PROJECT_ID})
    healthy = [cluster["clusterId"] for cluster in added["clusters"]]
    hung = sim.add_cluster()
    throttled = sim.add_cluster()
    # The hung endpoint answers after a minute (the client gives up after 15 s, three
    # times per poll); the throttled one always answers 429, Retry-After 5 s.
    sim.add_fault("latency", clusterId=hung, seconds=60)
    sim.add_fault("throttle", clusterId=throttled, retryAfter=5)
    try:
        world.create_secret()
        names = {cluster: f"w{index:02d}" for index, cluster in enumerate(healthy)}
        names[hung], names[throttled] = "hung", "throttled"
        manifests = [
            world.watch_manifest(name, cluster, pollInterval=f"{INTERVAL:g}s")
            for cluster, name in names.items()
        ]
        world.plane.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))

        def synced_healthy() -> bool:
            items = world.plane.kubectl_json("-n", world.namespace, "get", "cuw")["items"]
            synced = [item for item in items if _synced(item) == "True"]
            return len(synced) >= HEALTHY

        wait_until(synced_healthy, timeout=60, message="the healthy watches did not all sync")
        started = time.monotonic()
        before = {cluster: request_count(sim, cluster) for cluster in healthy}
        # The observation window: a fixed span of the schedule, then read the log.
        world.wait_condition("hung", "Synced", "False", "ApiUnavailable", timeout=WINDOW + 30)
        world.wait_condition("throttled", "Synced", "False", "Throttled", timeout=30)
        remaining = WINDOW - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)  # a bounded window to measure a schedule in, not a sync
        stats = sim._call("GET", "/stats", params={"timestamps": "1"})["clusters"]
    finally:
        sim.clear_faults(hung)
        sim.clear_faults(throttled)

    late = _lateness(stats, before)
    p50, p99 = percentile(late, 0.5), percentile(late, 0.99)
    assert p99 < 1.0, sorted(late)[-10:]
    assert max(late) < 2.5, sorted(late)[-10:]

    # The bad two were polled all along, and said why they fail.
    hung_status = world.condition("hung", "Synced")
    assert hung_status is not None
    assert "no complete answer within" in hung_status["message"]
    assert stats[hung]["count"] >= 3  # one whole poll: three attempts
    assert stats[throttled]["count"] >= 6  # at least two polls
    measured(
        f"{HEALTHY} watches every {INTERVAL:g}s beside a hung and a throttled cluster",
        {
            "intervals": len(late),
            "drift_p50_ms": round(p50 * 1000),
            "drift_p99_ms": round(p99 * 1000),
            "drift_max_ms": round(max(late) * 1000),
            "hung_requests": stats[hung]["count"],
            "throttled_requests": stats[throttled]["count"],
        },
    )


def _lateness(stats: dict[str, Any], before: dict[str, int]) -> list[float]:
    """How late (or early) each healthy watch's polls came in the window, in seconds:
    the gap between consecutive requests for one cluster, minus its `pollInterval`."""
    drifts: list[float] = []
    for cluster, count_before in before.items():
        times: list[float] = stats[cluster]["timestamps"]
        # The last request before the window, then every one in it.
        window = times[-(stats[cluster]["count"] - count_before + 1) :]
        drifts += [later - earlier - INTERVAL for earlier, later in itertools.pairwise(window)]
        assert stats[cluster]["count"] - count_before >= WINDOW // INTERVAL - 1, cluster
    assert len(drifts) >= len(before) * (WINDOW // INTERVAL - 1)
    return [abs(drift) for drift in drifts]


def _synced(item: dict[str, Any]) -> str | None:
    for condition in (item.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Synced":
            return str(condition["status"])
    return None


DRIPPING = 40


@pytest.mark.slow
def test_a_namespace_of_dripping_endpoints_does_not_starve_another(world: World) -> None:
    """Issue 11.3: 40 watches in one namespace whose endpoint sends a byte a second
    (each request would hold a slot for minutes), beside 50 healthy watches in
    another namespace. Each attempt ends at its deadline (15 s) and the dripping
    namespace gets at most half of the 32 request slots while the healthy one is
    active, so the healthy watches keep their schedule."""
    sim = world.sim
    plane = world.plane
    added = sim._call("POST", "/clusters", json={"count": HEALTHY, "projectId": DEMO_PROJECT_ID})
    healthy = [cluster["clusterId"] for cluster in added["clusters"]]
    added = sim._call("POST", "/clusters", json={"count": DRIPPING, "projectId": DEMO_PROJECT_ID})
    dripping = [cluster["clusterId"] for cluster in added["clusters"]]
    for cluster in dripping:
        sim.add_fault("drip", clusterId=cluster, seconds=1)
    slow = World(plane, sim, world.operator, f"{world.namespace[:50]}-drip")
    plane.kubectl("create", "namespace", slow.namespace)
    try:
        world.create_secret()
        slow.create_secret()
        manifests = [
            world.watch_manifest(f"w{index:02d}", cluster, pollInterval=f"{INTERVAL:g}s")
            for index, cluster in enumerate(healthy)
        ] + [
            slow.watch_manifest(f"d{index:02d}", cluster, pollInterval=f"{INTERVAL:g}s")
            for index, cluster in enumerate(dripping)
        ]
        plane.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))

        def synced_healthy() -> bool:
            items = plane.kubectl_json("-n", world.namespace, "get", "cuw")["items"]
            return len([item for item in items if _synced(item) == "True"]) >= HEALTHY

        wait_until(synced_healthy, timeout=60, message="the healthy watches did not all sync")
        # Let the dripping namespace fill its share of the slots, then observe.
        wait_until(
            lambda: sum(request_count(sim, cluster) for cluster in dripping) >= DRIPPING,
            timeout=60,
            message="the dripping watches were not all polled",
        )
        started = time.monotonic()
        before = {cluster: request_count(sim, cluster) for cluster in healthy}
        # A fixed span of the schedule (not a sync): then read the simulator's log.
        while time.monotonic() - started < WINDOW:
            time.sleep(min(5.0, WINDOW - (time.monotonic() - started)))
        stats = sim._call("GET", "/stats", params={"timestamps": "1"})["clusters"]
        dripping_requests = sum(stats[cluster]["count"] for cluster in dripping)

        def a_dripping_watch_failed() -> dict[str, Any] | None:
            for item in plane.kubectl_json("-n", slow.namespace, "get", "cuw")["items"]:
                for condition in (item.get("status") or {}).get("conditions") or []:
                    if condition["type"] == "Synced" and condition["status"] == "False":
                        return dict(condition)
            return None

        # Each dripping poll takes three attempts of 15 s, 16 at a time: a while.
        dripped = wait_until(
            a_dripping_watch_failed, timeout=300, message="no dripping watch ever failed"
        )
    finally:
        for cluster in dripping:
            sim.clear_faults(cluster)
        plane.kubectl("delete", "namespace", slow.namespace, "--wait=false", check=False)

    late = _lateness(stats, before)
    p50, p99 = percentile(late, 0.5), percentile(late, 0.99)
    measured(
        f"{HEALTHY} watches every {INTERVAL:g}s beside {DRIPPING} dripping watches "
        "in another namespace",
        {
            "intervals": len(late),
            "drift_p50_ms": round(p50 * 1000),
            "drift_p99_ms": round(p99 * 1000),
            "drift_max_ms": round(max(late) * 1000),
            "dripping_requests": dripping_requests,
            "dripping_synced": dripped,
        },
    )
    assert p99 < 1.0, sorted(late)[-10:]
    assert max(late) < 2.5, sorted(late)[-10:]
    # The dripping watches were polled, and each attempt ended at its deadline.
    assert dripped is not None
    assert dripped["status"] == "False"
    assert "no complete answer within 15s" in dripped["message"]
