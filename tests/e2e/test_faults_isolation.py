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

    drifts: list[float] = []
    for cluster in healthy:
        times: list[float] = stats[cluster]["timestamps"]
        # The last request before the window, then every one in it.
        window = times[-(stats[cluster]["count"] - before[cluster] + 1) :]
        drifts += [later - earlier - INTERVAL for earlier, later in itertools.pairwise(window)]
        assert stats[cluster]["count"] - before[cluster] >= WINDOW // INTERVAL - 1, cluster
    assert len(drifts) >= HEALTHY * (WINDOW // INTERVAL - 1)
    late = [abs(drift) for drift in drifts]
    p50, p99 = percentile(late, 0.5), percentile(late, 0.99)
    assert p99 < 1.0, sorted(late)[-10:]
    assert max(late) < 2.5, sorted(late)[-10:]

    # The bad two were polled all along, and said why they fail.
    hung_status = world.condition("hung", "Synced")
    assert hung_status is not None
    assert "no answer in time" in hung_status["message"]
    assert stats[hung]["count"] >= 3  # one whole poll: three attempts
    assert stats[throttled]["count"] >= 6  # at least two polls
    measured(
        f"{HEALTHY} watches every {INTERVAL:g}s beside a hung and a throttled cluster",
        {
            "intervals": len(drifts),
            "drift_p50_ms": round(p50 * 1000),
            "drift_p99_ms": round(p99 * 1000),
            "drift_max_ms": round(max(late) * 1000),
            "hung_requests": stats[hung]["count"],
            "throttled_requests": stats[throttled]["count"],
        },
    )


def _synced(item: dict[str, Any]) -> str | None:
    for condition in (item.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Synced":
            return str(condition["status"])
    return None
