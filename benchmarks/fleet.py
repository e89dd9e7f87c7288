"""The benchmark's fleet: N simulated clusters and one CceUpgradeWatch for each.

About a tenth of the clusters are mid-upgrade on a timeline whose tasks each take
a day, so nothing changes by itself during a run: every change the operator sees
is one the benchmark forced at a known moment. The rest are idle (no workflow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cce_upgrade_watch.resource import GROUP, PLURAL, VERSION
from cce_upgrade_watch.simulator import DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY

NAMESPACE_COUNT = 10
NAMESPACE_PREFIX = "bench-"
SECRET_NAME = "cce-credentials"  # noqa: S105 (a name, not a secret)
ACTIVE_FRACTION = 0.1

_A_DAY = 86400.0

#: A workflow that is Running (PreCheck) from the start and then stays put: each
#: task runs, and each next one waits, for a day.
LONG_UPGRADE_TIMELINE: dict[str, Any] = {
    "steps": [
        {"task": "PreCheck", "wait": 0, "queue": 0, "run": _A_DAY},
        {"task": "Snapshot", "wait": _A_DAY, "queue": 0, "run": _A_DAY},
        {"task": "Cluster", "wait": _A_DAY, "queue": 0, "run": _A_DAY},
        {"task": "PostCheck", "wait": _A_DAY, "queue": 0, "run": _A_DAY},
    ]
}

#: The changes forced on one mid-upgrade cluster, in this order. Each moves exactly
#: one task (so one TaskStatusChanged Event) and keeps the phase Running (so the
#: cluster keeps its active poll interval).
CHANGE_SEQUENCE: tuple[tuple[str, str], ...] = (
    ("PreCheck", "Success"),
    ("Snapshot", "Running"),
    ("Snapshot", "Success"),
    ("Cluster", "Running"),
    ("Cluster", "Success"),
    ("PostCheck", "Running"),
)


@dataclass(frozen=True)
class Watch:
    namespace: str
    name: str
    cluster_id: str
    active: bool  # mid-upgrade (polled at the active interval)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def namespaces() -> list[str]:
    return [f"{NAMESPACE_PREFIX}{index}" for index in range(NAMESPACE_COUNT)]


def active_count(total: int) -> int:
    """About 10% mid-upgrade, at least one when there are any watches."""
    return min(total, max(1, math.ceil(total * ACTIVE_FRACTION))) if total else 0


def assign_watches(active_ids: Sequence[str], idle_ids: Sequence[str]) -> list[Watch]:
    """One watch per cluster, spread round-robin over the namespaces."""
    clusters = [(cluster_id, True) for cluster_id in active_ids]
    clusters += [(cluster_id, False) for cluster_id in idle_ids]
    spaces = namespaces()
    return [
        Watch(spaces[index % len(spaces)], f"w{index:05d}", cluster_id, active)
        for index, (cluster_id, active) in enumerate(clusters)
    ]


def secret_manifest(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": namespace},
        "stringData": {"accessKey": DEMO_ACCESS_KEY, "secretKey": DEMO_SECRET_KEY},
    }


def watch_manifest(
    watch: Watch, endpoint: str, *, active_interval: str, idle_interval: str
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CceUpgradeWatch",
        "metadata": {"name": watch.name, "namespace": watch.namespace},
        "spec": {
            "endpoint": endpoint,
            "projectId": DEMO_PROJECT_ID,
            "clusterId": watch.cluster_id,
            "credentialsSecretRef": {"name": SECRET_NAME},
            "activePollInterval": active_interval,
            "pollInterval": idle_interval,
        },
    }


def watches_path(namespace: str | None = None) -> str:
    if namespace is None:
        return f"/apis/{GROUP}/{VERSION}/{PLURAL}"
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
