"""Helpers for the reliability tests (tests/e2e/test_faults*.py, test_ha*.py,
test_secret_hygiene*.py): operators with flags of their own, private control planes
for tests that disrupt them, and reading the simulator's request log and the
operator's metrics.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.controlplane import LOCALCLUSTER, REPO_ROOT, ControlPlane, build_binaries
from tests.support.kubeproxy import FaultyKubeProxy
from tests.support.operatorprocess import OperatorProcess
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until
from tests.support.world import World

#: Every key of `.status` that mirrors the workflow: a failed poll must keep them all.
MIRRORED_KEYS = (
    "phase",
    "clusterVersion",
    "targetVersion",
    "workflowID",
    "currentTask",
    "progress",
    "pointStatuses",
    "lineStatuses",
    "history",
    "lastChangeTime",
)


def mirrored(status: dict[str, Any]) -> dict[str, Any]:
    return {key: status[key] for key in MIRRORED_KEYS if key in status}


# ---------------------------------------------------------------- operators


@contextmanager
def swapped_operator(
    session_operator: OperatorProcess,
    kubeconfig: Path,
    log_path: Path,
    args: Sequence[str],
    *,
    insecure_loopback: bool = True,
    env: dict[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    """Replace the session's operator by one started with `args` for a while.

    The session operator watches every namespace, so a second operator beside it
    would poll the same objects; it is stopped meanwhile and started again after.
    """
    session_operator.stop()
    replacement = OperatorProcess(
        kubeconfig, log_path, args=tuple(args), insecure_loopback=insecure_loopback, env=env
    )
    try:
        replacement.start()
        yield replacement
    finally:
        replacement.stop()
        session_operator.start()


@contextmanager
def world_through_proxy(
    plane: ControlPlane,
    simulator: SimulatorControl,
    session_operator: OperatorProcess,
    namespace: str,
    workdir: Path,
    args: Sequence[str],
) -> Iterator[tuple[World, FaultyKubeProxy]]:
    """An operator started with `args` whose Kubernetes calls go through a
    `FaultyKubeProxy` (in place of the session's operator), and its world."""
    proxy = FaultyKubeProxy(plane.operator_kubeconfig)
    proxy.start()
    try:
        kubeconfig = proxy.write_kubeconfig(workdir / "via-proxy.kubeconfig")
        with swapped_operator(session_operator, kubeconfig, workdir / "operator.log", args) as op:
            yield World(plane, simulator, op, namespace), proxy
    finally:
        proxy.stop()


def metric_samples(operator: OperatorProcess, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric family (`name` as exposed, e.g. cce_api_requests_total)."""
    samples = []
    for family in text_string_to_metric_families(operator.scrape_metrics()):
        for sample in family.samples:
            if sample.name == name:
                samples.append((dict(sample.labels), float(sample.value)))
    return samples


def metric_total(operator: OperatorProcess, name: str, **labels: str) -> float:
    return sum(
        value
        for sample_labels, value in metric_samples(operator, name)
        if all(sample_labels.get(key) == wanted for key, wanted in labels.items())
    )


# ---------------------------------------------------------------- control planes


class PrivateControlPlane(ControlPlane):
    """A control plane of a test module's own, which its tests may break."""

    def stop_component(self, name: str, *, kill: bool = True) -> None:
        """Stop etcd, the apiserver or kcm; `kill` sends SIGKILL (a crash)."""
        argv = [str(LOCALCLUSTER), "stop-component", str(self.directory), name]
        subprocess.run([*argv, "--kill"] if kill else argv, check=True)

    def start_component(self, name: str) -> None:
        """Start it again on the same port; returns once it is healthy."""
        subprocess.run(
            [str(LOCALCLUSTER), "start-component", str(self.directory), name], check=True
        )

    def apply_file(self, path: Path) -> None:
        self.kubectl("apply", "-f", str(path))


@contextmanager
def private_control_plane(directory: Path) -> Iterator[PrivateControlPlane]:
    """Start a control plane in `directory` with the CRD installed; stop it after."""
    bin_dir = build_binaries()
    subprocess.run([str(LOCALCLUSTER), "start", str(directory)], check=True)
    plane = PrivateControlPlane(directory, bin_dir)
    try:
        plane.kubectl("apply", "-k", str(REPO_ROOT / "crds"))
        plane.kubectl(
            "wait",
            "--for=condition=Established",
            "crd/cceupgradewatches.cce.upgradewatch.io",
            "--timeout=60s",
        )
        yield plane
    finally:
        plane.stop()


# ---------------------------------------------------------------- the simulator's view


def request_count(sim: SimulatorControl, cluster: str) -> int:
    return int(sim.requests(cluster)["count"])


def request_times(sim: SimulatorControl, cluster: str) -> list[float]:
    """When the simulator received each request for the cluster (its last 512), in order."""
    return [float(t) for t in sim.requests(cluster)["timestamps"]]


def wait_for_requests(
    sim: SimulatorControl, cluster: str, at_least: int, timeout: float = 30
) -> int:
    """Wait until the cluster has had `at_least` requests in all; returns the count."""
    return wait_until(
        lambda: count if (count := request_count(sim, cluster)) >= at_least else None,
        timeout=timeout,
        message=lambda: f"{cluster} had {request_count(sim, cluster)} requests, not {at_least}",
    )


def wait_for_next_poll(sim: SimulatorControl, cluster: str, timeout: float = 30) -> int:
    """Wait for a request that starts after this call; returns the count then.

    A fault injected right after it hits the poll after, not one in flight."""
    return wait_for_requests(sim, cluster, request_count(sim, cluster) + 1, timeout)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0..1) of `values`, interpolating linearly."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def measured(what: str, value: Any) -> None:
    """Print a figure for docs/RELIABILITY.md; shown by `pytest -rP` (or `-s`)."""
    print(f"measured: {what}: {json.dumps(value) if not isinstance(value, str) else value}")


# ---------------------------------------------------------------- events


def reasons(world: World, name: str) -> list[str]:
    return [reason for _, reason, _ in world.event_summaries(name)]


def new_events(
    world: World, name: str, before: int, count: int, timeout: float = 30
) -> list[tuple[str, str, str]]:
    """Wait for `count` Events after the first `before`; return exactly those after."""
    return world.wait_events(name, before + count, timeout=timeout)[before:]
