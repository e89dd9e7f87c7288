"""One shared scheduler, no daemon per object (docs/PERFORMANCE.md): watches carry
no finalizer, a finalizer left by an older version is removed so the object can be
deleted, and a deleted watch (or one whose deletion is under way) is polled no more,
even when its DELETED event never reached the operator (the resync).

Real control plane, real simulator process, real operator process, kubectl.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support.controlplane import ControlPlane
from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import (
    metric_samples,
    request_count,
    wait_for_requests,
    world_through_proxy,
)
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until
from tests.support.world import World

FINALIZER = "cce.upgradewatch.io/finalizer"  # what versions with a daemon per object put
OTHER = "example.com/keep"  # someone else's finalizer: never ours to remove
STEP = 1000.0
TIMELINE = {"steps": [{"task": "PreCheck", "wait": STEP, "queue": STEP, "run": STEP}]}


def phase_series(world: World, name: str) -> list[dict[str, str]]:
    return [
        labels
        for labels, _ in metric_samples(world.operator, "cceupgradewatch_workflow_phase")
        if labels.get("namespace") == world.namespace and labels.get("name") == name
    ]


def old_running_watch(world: World, name: str, *finalizers: str) -> str:
    """A watch of a cluster with an upgrade ahead (Init), created with `finalizers`
    as an older version left them; returns the cluster."""
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.sim.start_workflow(cluster, TIMELINE)
    world.create_secret()
    manifest = world.watch_manifest(name, cluster, activePollInterval="5s")
    manifest["metadata"]["finalizers"] = list(finalizers)
    world.plane.apply(json.dumps(manifest))
    return cluster


def assert_polled_no_more(world: World, name: str, cluster: str) -> None:
    """Gone from the scheduler: its per-watch series go with it, and no poll follows."""
    wait_until(lambda: not phase_series(world, name), timeout=30)
    polled = request_count(world.sim, cluster)
    time.sleep(12)  # an observation window of two intervals: no poll may happen in it
    assert request_count(world.sim, cluster) == polled


def wait_finalizers(world: World, name: str, expected: list[str] | None) -> None:
    wait_until(
        lambda: world.get(name)["metadata"].get("finalizers") == expected,
        timeout=30,
        message=lambda: f"finalizers: {world.get(name)['metadata'].get('finalizers')}",
    )


def test_a_new_watch_gets_no_finalizer_and_no_kopf_annotations(world: World) -> None:
    cluster = world.sim.add_cluster(version="v1.28.3-r0")
    world.create_secret()
    world.create_watch("fresh", cluster)
    world.wait_condition("fresh", "Synced", "True")
    meta = world.get("fresh")["metadata"]
    assert "finalizers" not in meta
    assert not [
        key for key in meta.get("annotations") or {} if "kopf" in key or "last-handled" in key
    ]


def test_an_older_version_s_finalizer_is_removed_and_the_watch_can_be_deleted(
    world: World,
) -> None:
    cluster = old_running_watch(world, "legacy", FINALIZER)
    wait_finalizers(world, "legacy", None)
    world.wait_status("legacy", phase="Init")
    deleted = world.kubectl("delete", "cuw", "legacy", "--timeout=30s", check=False)
    assert deleted.returncode == 0, deleted.stderr
    assert_polled_no_more(world, "legacy", cluster)


def test_a_watch_whose_deletion_is_held_by_another_finalizer_is_polled_no_more(
    world: World,
) -> None:
    cluster = old_running_watch(world, "held", FINALIZER, OTHER)
    wait_finalizers(world, "held", [OTHER])  # only ours goes
    world.wait_status("held", phase="Init")
    wait_for_requests(world.sim, cluster, request_count(world.sim, cluster) + 1)  # polled
    world.kubectl("delete", "cuw", "held", "--wait=false")
    assert_polled_no_more(world, "held", cluster)
    assert world.get("held")["metadata"].get("deletionTimestamp")  # still there, held
    world.kubectl("patch", "cuw", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    wait_until(lambda: world.kubectl("get", "cuw", "held", check=False).returncode != 0, timeout=30)


def test_a_deletion_whose_event_never_came_is_found_by_the_resync(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Without a finalizer, an object deleted while the operator's watch had to list
    again ("410 Gone") leaves no event: the proxy leaves the DELETED event out, and
    the resync's listing must stop the polls."""
    args = ("-A", "--max-initial-delay=0s", "--resync-interval=3s")
    with world_through_proxy(control_plane, simulator, operator, namespace, tmp_path, args) as (
        world,
        proxy,
    ):
        cluster = old_running_watch(world, "unseen")
        world.wait_status("unseen", phase="Init")
        kept = old_running_watch(world, "kept")
        world.wait_status("kept", phase="Init")
        proxy.hide_deletions(namespace)
        world.kubectl("delete", "cuw", "unseen", "--timeout=30s")
        assert_polled_no_more(world, "unseen", cluster)
        assert "resync: 1 watch(es) in " + namespace in world.operator.log()
        # The other watch of the namespace is still polled.
        wait_for_requests(world.sim, kept, request_count(world.sim, kept) + 1)
        assert "Traceback" not in world.operator.log(), world.operator.log()[-3000:]
