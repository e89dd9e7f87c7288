"""High availability and scale-out with two operator replicas at once.

- Peering (`--peering NAME --priority N`): both replicas run, only the higher
  priority one polls; when it is SIGKILLed, the other takes over within the
  peering lifetime (10 s here, `--peering-lifetime`), and repeats no Event.
- Sharding (`--selector`): each replica watches the objects whose labels match its
  selector; every object is polled by exactly one replica.

"Polled by exactly one replica" is read from both sides: the simulator's request
counts per cluster (all of them, whoever sent them), and each replica's own
metrics (`cceupgradewatch_watches`, `cce_api_requests_total`). A private control
plane keeps the session operator (which watches every namespace) out of the way.
Reproduce: `.venv/bin/pytest tests/e2e/test_ha.py -rP | grep measured`.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import REPO_ROOT
from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import (
    PrivateControlPlane,
    measured,
    metric_total,
    private_control_plane,
    request_count,
    request_times,
)
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until
from tests.support.world import World

PEERING = "cce-upgrade-watch"
LIFETIME = 10  # seconds: --peering-lifetime
WATCHES = 8
STEP = 1000.0


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateControlPlane]:
    with private_control_plane(tmp_path_factory.mktemp("haplane")) as plane:
        plane.kubectl("apply", "-k", str(REPO_ROOT / "crds" / "peering"))
        plane.kubectl(
            "wait",
            "--for=condition=Established",
            "crd/clusterkopfpeerings.kopf.dev",
            "--timeout=60s",
        )
        plane.apply(
            json.dumps(
                {
                    "apiVersion": "kopf.dev/v1",
                    "kind": "ClusterKopfPeering",
                    "metadata": {"name": PEERING},
                }
            )
        )
        yield plane


@pytest.fixture
def replicas(plane: PrivateControlPlane, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """Replicas a test starts; all stopped at its end."""
    started: list[OperatorProcess] = []
    yield started
    for replica in started:
        replica.stop()


def start_replica(
    plane: PrivateControlPlane, replicas: list[OperatorProcess], log: Path, *args: str
) -> OperatorProcess:
    common = ("-A", "--max-initial-delay", "0s", "--secret-cache-ttl", "1h")
    replica = OperatorProcess(plane.operator_kubeconfig, log, args=(*common, *args))
    replicas.append(replica)
    replica.start()
    return replica


@pytest.fixture
def world(plane: PrivateControlPlane, simulator: SimulatorControl) -> World:
    namespace = f"ha-{uuid.uuid4().hex[:6]}"
    plane.kubectl("create", "namespace", namespace)
    # The World's operator is not used: these tests run their replicas themselves.
    return World(plane, simulator, None, namespace)  # type: ignore[arg-type]


def running_watches(world: World, count: int, **labels_by_index: Any) -> dict[str, str]:
    """`count` watches (w0, w1...) of clusters with an upgrade sitting in Init, polled
    every 5 s; returns name -> cluster id."""
    world.create_secret()
    clusters = {}
    manifests = []
    for index in range(count):
        cluster = world.sim.add_cluster()
        world.sim.start_workflow(cluster, {"steps": [{"task": "PreCheck", "wait": STEP}]})
        name = f"w{index}"
        manifest = world.watch_manifest(name, cluster, activePollInterval="5s")
        if index in labels_by_index.get("labels", {}):
            manifest["metadata"]["labels"] = labels_by_index["labels"][index]
        manifests.append(manifest)
        clusters[name] = cluster
    world.plane.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
    return clusters


def all_synced(world: World, names: list[str]) -> None:
    for name in names:
        world.wait_condition(name, "Synced", "True", "PollSucceeded", timeout=60)


def requests_everywhere(world: World, clusters: dict[str, str]) -> dict[str, int]:
    return {name: request_count(world.sim, cluster) for name, cluster in clusters.items()}


def wait_for_polls(world: World, clusters: dict[str, str], more: int, timeout: float) -> None:
    """Wait until every cluster had `more` further requests."""
    start = requests_everywhere(world, clusters)
    wait_until(
        lambda: all(
            request_count(world.sim, cluster) >= start[name] + more
            for name, cluster in clusters.items()
        ),
        timeout=timeout,
        message=lambda: f"not every cluster was polled {more} more times",
    )


def min_gap(world: World, cluster: str) -> float:
    times = request_times(world.sim, cluster)
    return min(later - earlier for earlier, later in itertools.pairwise(times))


def peer(
    plane: PrivateControlPlane,
    replicas: list[OperatorProcess],
    log: Path,
    priority: int,
) -> OperatorProcess:
    """A replica in the peering, with a short lifetime."""
    peering = ("--peering", PEERING, "--peering-lifetime", f"{LIFETIME}s")
    return start_replica(plane, replicas, log, *peering, "--priority", str(priority))


def requests_sent(replica: OperatorProcess) -> float:
    return metric_total(replica, "cce_api_requests_total")


@pytest.mark.slow
def test_peering_one_replica_polls_and_the_other_takes_over(
    world: World, plane: PrivateControlPlane, replicas: list[OperatorProcess], tmp_path: Path
) -> None:
    active = peer(plane, replicas, tmp_path / "a.log", 100)
    standby = peer(plane, replicas, tmp_path / "b.log", 50)
    clusters = running_watches(world, WATCHES)
    all_synced(world, list(clusters))
    wait_for_polls(world, clusters, 3, timeout=40)

    # Exactly one replica polls: the active one has every loop and sent every request
    # the simulator got; the standby has none; nobody polls a cluster twice per 5 s.
    assert metric_total(active, "cceupgradewatch_watches") == WATCHES
    assert metric_total(standby, "cceupgradewatch_watches") == 0
    assert requests_sent(standby) == 0
    total = sum(requests_everywhere(world, clusters).values())
    assert requests_sent(active) == total
    assert all(min_gap(world, cluster) > 4.5 for cluster in clusters.values())

    # The active replica dies without a word; the standby takes over once its
    # peering record is older than the lifetime.
    before = requests_everywhere(world, clusters)
    events_before = {name: world.event_summaries(name) for name in clusters}
    active.kill()
    killed = time.monotonic()
    first_takeover: float | None = None

    def taken_over() -> bool:
        nonlocal first_takeover
        polled = [request_count(world.sim, c) > before[n] for n, c in clusters.items()]
        if any(polled) and first_takeover is None:
            first_takeover = time.monotonic() - killed
        return all(polled)

    wait_until(taken_over, timeout=LIFETIME + 30, message="the standby did not take over")
    all_polled = time.monotonic() - killed
    assert first_takeover is not None
    assert all_polled <= LIFETIME + 10, all_polled
    assert metric_total(standby, "cceupgradewatch_watches") == WATCHES
    wait_for_polls(world, clusters, 1, timeout=20)
    # (The active one may have polled a little between `total` and its death.)
    later = sum(requests_everywhere(world, clusters).values()) - total
    assert 0 < requests_sent(standby) <= later
    # The standby started from the stored status: nothing announced again.
    for name in clusters:
        events = world.event_summaries(name)
        assert events == events_before[name], name
        assert not [e for e, n in Counter(events).items() if n > 1], name
    measured(
        f"peering failover, lifetime {LIFETIME}s, {WATCHES} watches",
        {"first_poll_after_kill_s": round(first_takeover, 1), "all_polled_s": round(all_polled, 1)},
    )


@pytest.mark.slow
def test_a_working_replica_stops_polling_when_a_peer_of_higher_priority_joins(
    world: World, plane: PrivateControlPlane, replicas: list[OperatorProcess], tmp_path: Path
) -> None:
    # kopf pauses the working replica (it closes its watch streams) but tells its
    # raw-event handlers nothing: the shared scheduler must stop every poll, as
    # kopf stopped every daemon, and the newcomer does all the polling.
    first = peer(plane, replicas, tmp_path / "a.log", 50)
    clusters = running_watches(world, WATCHES)
    all_synced(world, list(clusters))
    # Every watch on the plane (earlier tests of this module leave theirs).
    everyone = len(plane.kubectl_json("get", "cuw", "-A")["items"])
    wait_until(
        lambda: metric_total(first, "cceupgradewatch_watches") == everyone,
        timeout=30,
        message="the first replica does not poll every watch",
    )
    higher = peer(plane, replicas, tmp_path / "b.log", 100)
    wait_until(
        lambda: metric_total(first, "cceupgradewatch_watches") == 0,
        timeout=LIFETIME + 30,
        message=lambda: f"the paused replica still polls:\n{first.log()[-3000:]}",
    )
    wait_until(
        lambda: metric_total(higher, "cceupgradewatch_watches") == everyone,
        timeout=LIFETIME + 30,
        message="the replica of higher priority never took the watches",
    )
    sent = requests_sent(first)
    wait_for_polls(world, clusters, 2, timeout=40)  # everything still polled ...
    assert requests_sent(first) == sent  # ... by the newcomer alone
    # (No gap check here: the newcomer polls each watch at once, --max-initial-delay
    # 0s, right after the paused replica's last poll, as any takeover does.)


def test_sharding_by_label_splits_the_watches(
    world: World, plane: PrivateControlPlane, replicas: list[OperatorProcess], tmp_path: Path
) -> None:
    shard_of = {index: "a" if index % 2 == 0 else "b" for index in range(WATCHES)}
    labels = {index: {"cce.upgradewatch.io/shard": shard} for index, shard in shard_of.items()}
    shard_a = start_replica(
        plane, replicas, tmp_path / "a.log", "-l", "cce.upgradewatch.io/shard=a"
    )
    shard_b = start_replica(
        plane, replicas, tmp_path / "b.log", "-l", "cce.upgradewatch.io/shard=b"
    )
    clusters = running_watches(world, WATCHES, labels=labels)
    all_synced(world, list(clusters))
    wait_for_polls(world, clusters, 2, timeout=30)

    # Each replica has its half of the loops, and between them they sent exactly what
    # the simulator received; no cluster was polled twice within its interval.
    assert metric_total(shard_a, "cceupgradewatch_watches") == WATCHES / 2
    assert metric_total(shard_b, "cceupgradewatch_watches") == WATCHES / 2
    total = sum(requests_everywhere(world, clusters).values())
    assert requests_sent(shard_a) + requests_sent(shard_b) == total
    assert requests_sent(shard_a) > 0
    assert requests_sent(shard_b) > 0
    assert all(min_gap(world, cluster) > 4.5 for cluster in clusters.values())
    for name in clusters:
        assert [why for _, why, _ in world.event_summaries(name)] == ["WorkflowDiscovered"]
    measured(
        f"label sharding, 2 replicas, {WATCHES} watches",
        {
            "shard_a_requests": requests_sent(shard_a),
            "shard_b_requests": requests_sent(shard_b),
            "simulator_requests": total,
        },
    )
