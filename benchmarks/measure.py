"""One measured run of the operator against a fresh control plane and simulator.

The phases, in order, each timed on the wall clock:
1. set-up: simulated clusters, namespaces and Secrets, the operator process;
2. convergence: create the N CceUpgradeWatch objects at once and wait until each
   carries a status (seen through a watch);
3. steady state: a window in which nothing changes in the simulated cloud, so every
   poll is an unchanged poll: operator CPU, CCE requests (every call), polls (the
   workflow list's requests alone, so lifecycle calls never count as polls),
   Kubernetes writes;
4. detection: force task changes on mid-upgrade clusters at known moments and time
   how long the status and the Event take to show each one;
5. drift: every poll interval the simulator recorded so far, against the interval
   the watch asks for.
The SDK baseline then polls the same simulated clusters (`baseline.py`).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.support.controlplane import OPERATOR_USER, ControlPlane
from tests.support.operatorprocess import OperatorProcess

from benchmarks import fleet, memprofile
from benchmarks.fleet import Watch
from benchmarks.kube import KubeHttp, audit_writes
from benchmarks.observer import (
    Observations,
    Observer,
    task_event_seen_at,
    task_status_seen_at,
)
from benchmarks.procstats import (
    CpuSample,
    cpu_between,
    cpu_seconds,
    load_average_1min,
    memory_kib,
    peak_rss_mib,
)
from benchmarks.stats import percentile, poll_interval_drifts

#: The resources the operator writes; the benchmark writes none of them after set-up.
OPERATOR_WRITTEN_RESOURCES = frozenset({"cceupgradewatches", "events"})
#: Objects created at once while converging (the API server handles far more).
CREATE_CONCURRENCY = 16
#: When the operator counts as done with the convergence burst (see `wait_until_quiet`).
QUIET_CPU_PERCENT = 30.0
QUIET_SECONDS = 3.0
QUIET_MAX_WAIT = 180.0


@dataclass(frozen=True)
class RunPlan:
    watches: int
    steady_seconds: float
    changes: int
    active_interval: float  # seconds
    idle_interval: float  # seconds
    active_interval_text: str  # as written in the spec, e.g. "30s"
    idle_interval_text: str
    convergence_timeout: float = 600.0


@dataclass(frozen=True)
class Profile:
    """`--profile`: where one run's profiles go, and how deep tracemalloc looks."""

    directory: Path
    frames: int

    @property
    def snapshot(self) -> Path:
        return self.directory / "memory.tracemalloc"

    @property
    def memory_report(self) -> Path:
        return self.directory / "memory.txt"

    @property
    def cpu_stacks(self) -> Path:
        return self.directory / "cpu.pyspy.txt"


@dataclass(frozen=True)
class Change:
    watch: Watch
    task: str
    status: str
    forced_at: float
    status_seen_after: float | None
    event_seen_after: float | None


@dataclass
class OperatorFigures:
    label: str
    watches: int
    convergence_seconds: float
    settle_seconds: float  # after convergence, until the operator was quiet
    steady_seconds: float
    cpu_seconds: float
    cpu_percent: float
    peak_rss_mib: float
    polls: int
    cce_requests_per_second: float
    kube_writes: int  # by kube-apiserver's /metrics, in the steady window
    kube_writes_by_operator: int  # by the audit log (operator user), in the steady window
    drift_p50: float
    drift_p99: float
    drift_samples: int
    detection_status_p50: float
    detection_status_p99: float
    detection_event_p50: float
    detection_event_p99: float
    changes_forced: int
    changes_detected: int
    writes_per_change: float
    load_during: float
    # CPU seconds each process used from the first create until converged: where
    # the convergence time went (NaN where the process could not be read).
    convergence_cpu_operator: float = float("nan")
    convergence_cpu_apiserver: float = float("nan")
    convergence_cpu_etcd: float = float("nan")
    convergence_cpu_benchmark: float = float("nan")

    @property
    def kube_writes_per_second(self) -> float:
        return self.kube_writes / self.steady_seconds if self.steady_seconds else 0.0

    @property
    def idle_writes_per_poll(self) -> float:
        return self.kube_writes_by_operator / self.polls if self.polls else float("nan")

    @property
    def cpu_seconds_per_1000_polls(self) -> float:
        return 1000 * self.cpu_seconds / self.polls if self.polls else float("nan")


class SimulatorApi:
    """The simulator's control API, async."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.AsyncClient(base_url=url + "/_sim", timeout=60)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} /_sim{path}: {response.status_code} {response.text}")
        return response.json()

    async def add_clusters(self, count: int, **spec: Any) -> list[str]:
        if count == 0:
            return []
        body = await self._call("POST", "/clusters", json={"count": count, **spec})
        return [cluster["clusterId"] for cluster in body["clusters"]]

    async def force(self, cluster_id: str, task: str, status: str) -> None:
        await self._call(
            "POST",
            f"/clusters/{cluster_id}/workflows/latest/force",
            json={"task": task, "status": status},
        )

    async def requests_total(self) -> tuple[int, int]:
        """(every CCE request, the upgrade-workflow list's alone: one per poll)."""
        body = await self._call("GET", "/stats")
        polls = sum(int(c.get("count", 0)) for c in body["clusters"].values())
        return int(body["global"]["requests"]), polls

    async def request_timestamps(self) -> dict[str, list[float]]:
        body = await self._call("GET", "/stats", params={"timestamps": "1"})
        return {cid: list(c.get("timestamps") or []) for cid, c in body["clusters"].items()}


async def build_fleet(sim: SimulatorApi, total: int) -> list[Watch]:
    active = fleet.active_count(total)
    active_ids = await sim.add_clusters(active, timeline=fleet.LONG_UPGRADE_TIMELINE)
    idle_ids = await sim.add_clusters(total - active)
    return fleet.assign_watches(active_ids, idle_ids)


async def create_namespaces(kube: KubeHttp) -> None:
    for namespace in fleet.namespaces():
        await kube.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        )
        await kube.create(
            f"/api/v1/namespaces/{namespace}/secrets", fleet.secret_manifest(namespace)
        )


async def create_watches(kube: KubeHttp, watches: list[Watch], sim_url: str, plan: RunPlan) -> None:
    slots = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create(watch: Watch) -> None:
        manifest = fleet.watch_manifest(
            watch,
            sim_url,
            active_interval=plan.active_interval_text,
            idle_interval=plan.idle_interval_text,
        )
        async with slots:
            await kube.create(fleet.watches_path(watch.namespace), manifest)

    await asyncio.gather(*(create(watch) for watch in watches))


async def force_changes(
    sim: SimulatorApi, observer: Observer, watches: list[Watch], plan: RunPlan
) -> list[Change]:
    """Force `plan.changes` single-task changes, spread over the mid-upgrade clusters.

    Each cluster takes its changes one after another, each at a random moment of
    the active poll interval (so the moments fall uniformly against the poll
    schedule), and the next only once the previous one was seen or given up.
    """
    active = [watch for watch in watches if watch.active]
    per_cluster: dict[Watch, list[tuple[str, str]]] = {}
    possible = min(plan.changes, len(active) * len(fleet.CHANGE_SEQUENCE))
    for index in range(possible):
        watch = active[index % len(active)]
        step = fleet.CHANGE_SEQUENCE[index // len(active)]
        per_cluster.setdefault(watch, []).append(step)
    give_up_after = 2 * plan.active_interval + 30
    changes: list[Change] = []

    async def drive(watch: Watch, steps: list[tuple[str, str]]) -> None:
        for task, status in steps:
            # Not synchronisation: a random phase against the operator's poll schedule.
            await asyncio.sleep(random.uniform(0, plan.active_interval))
            changes.append(await force_one(sim, observer, watch, task, status, give_up_after))

    await asyncio.gather(*(drive(watch, steps) for watch, steps in per_cluster.items()))
    return changes


async def wait_until_quiet(pid: int) -> float:
    """Wait until the operator has worked through the convergence burst (kopf still
    handles the watch events of N creations and N status writes after the last
    status is stored): until it used under `QUIET_CPU_PERCENT` of a core for
    `QUIET_SECONDS` in a row, or `QUIET_MAX_WAIT` passed. Returns the seconds waited."""
    started = time.monotonic()
    quiet_since: float | None = None
    last = CpuSample(started, cpu_seconds(pid))
    while time.monotonic() - started < QUIET_MAX_WAIT:
        await asyncio.sleep(1.0)  # a sampling period, not synchronisation
        sample = CpuSample(time.monotonic(), cpu_seconds(pid))
        if cpu_between(last, sample).percent_of_core < QUIET_CPU_PERCENT:
            quiet_since = quiet_since or last.at
            if sample.at - quiet_since >= QUIET_SECONDS:
                break
        else:
            quiet_since = None
        last = sample
    return time.monotonic() - started


async def force_one(
    sim: SimulatorApi, observer: Observer, watch: Watch, task: str, status: str, wait: float
) -> Change:
    """Force one task change now; wait (up to `wait` seconds) for its status and Event."""
    forced_at = time.time()
    await sim.force(watch.cluster_id, task, status)

    def status_at(seen: Observations) -> float | None:
        return task_status_seen_at(seen, watch.key, task, status, forced_at)

    def event_at(seen: Observations) -> float | None:
        return task_event_seen_at(seen, watch.key, task, status, forced_at)

    await observer.wait_for(
        lambda seen: status_at(seen) is not None and event_at(seen) is not None, within=wait
    )
    shown, posted = status_at(observer.seen), event_at(observer.seen)
    return Change(
        watch,
        task,
        status,
        forced_at,
        None if shown is None else shown - forced_at,
        None if posted is None else posted - forced_at,
    )


async def measure_operator(
    label: str,
    plane: ControlPlane,
    sim_url: str,
    plan: RunPlan,
    workdir: Path,
    operator_env: Mapping[str, str],
    progress: Any,
    profile: Profile | None = None,
) -> tuple[OperatorFigures, list[Watch]]:
    """Phases 1-5 against a running control plane and simulator; stops the operator."""
    sim = SimulatorApi(sim_url)
    kube = KubeHttp(plane.directory)
    env = dict(operator_env)
    if profile is not None:
        profile.directory.mkdir(parents=True, exist_ok=True)
        env |= memprofile.operator_env(profile.frames, profile.snapshot, env.get("PYTHONPATH", ""))
    operator = OperatorProcess(
        plane.operator_kubeconfig,
        workdir / "operator.log",
        args=("-A",),
        env=env,
        insecure_loopback=True,  # the simulator is a plain-HTTP loopback endpoint
    )
    try:
        progress(f"[{label}] adding {plan.watches} simulated clusters, namespaces and Secrets")
        watches = await build_fleet(sim, plan.watches)
        await create_namespaces(kube)
        await asyncio.to_thread(operator.start)
        assert operator.process is not None
        pid = operator.process.pid
        observer = Observer(kube)
        await observer.start()
        keys = {watch.key for watch in watches}

        # ---- convergence
        progress(f"[{label}] creating {plan.watches} CceUpgradeWatch objects")
        if profile is not None:
            memprofile.start_tracing(pid)
        created_at = time.time()
        cpu_pids = {
            "operator": pid,
            "apiserver": _pid_from(plane.directory / "apiserver.pid"),
            "etcd": _pid_from(plane.directory / "etcd.pid"),
            "benchmark": os.getpid(),
        }
        cpu_before = {name: _cpu_or_nan(p) for name, p in cpu_pids.items()}
        await create_watches(kube, watches, sim_url, plan)
        converged = await observer.wait_for(
            lambda seen: keys <= seen.first_status_at.keys(), within=plan.convergence_timeout
        )
        if not converged:
            missing = len(keys - observer.seen.first_status_at.keys())
            raise RuntimeError(f"{missing} objects still have no status; see {operator.log_path}")
        convergence = max(observer.seen.first_status_at[key] for key in keys) - created_at
        convergence_cpu = {name: _cpu_or_nan(p) - cpu_before[name] for name, p in cpu_pids.items()}
        progress(f"[{label}] converged in {convergence:.1f}s")
        settle = await wait_until_quiet(pid)
        progress(f"[{label}] operator quiet after a further {settle:.1f}s")
        if profile is not None:
            await asyncio.to_thread(snapshot_memory, pid, profile, plan.watches, label, progress)

        # ---- steady state: nothing changes, every poll is an unchanged poll
        progress(f"[{label}] steady state for {plan.steady_seconds:.0f}s")
        window_start = time.time()
        cpu_start = CpuSample(time.monotonic(), cpu_seconds(pid))
        requests_start = await sim.requests_total()
        writes_start = await kube.apiserver_writes(OPERATOR_WRITTEN_RESOURCES)
        profiler = start_profiler(pid, plan.steady_seconds, profile) if profile else None
        await asyncio.sleep(plan.steady_seconds)  # the measurement window itself
        if profile is not None and profiler is not None:
            await asyncio.to_thread(profiler.wait)
            progress(f"[{label}] py-spy profile of the steady window: {profile.cpu_stacks}")
        cpu_end = CpuSample(time.monotonic(), cpu_seconds(pid))
        requests_end = await sim.requests_total()
        writes_end = await kube.apiserver_writes(OPERATOR_WRITTEN_RESOURCES)
        window_end = time.time()
        load_during = load_average_1min()
        cpu = cpu_between(cpu_start, cpu_end)

        # ---- detection
        progress(f"[{label}] forcing {plan.changes} task changes")
        detection_start = time.time()
        changes = await force_changes(sim, observer, watches, plan)
        detection_end = time.time()

        # ---- drift, over everything polled since the objects were created
        timestamps = await sim.request_timestamps()
        expected = {
            w.cluster_id: plan.active_interval if w.active else plan.idle_interval for w in watches
        }
        drifts = poll_interval_drifts(timestamps, expected, since=created_at, until=detection_end)
        rss = peak_rss_mib(pid)
        await observer.stop()
    finally:
        await asyncio.to_thread(operator.stop)
        await kube.aclose()
        await sim.aclose()

    # The audit log is written in batches (at most 1 s late): read it last.
    steady_writes = audit_writes(
        plane.audit_log, OPERATOR_USER, since=window_start, until=window_end
    )
    detection_writes = audit_writes(
        plane.audit_log, OPERATOR_USER, since=detection_start, until=detection_end + 1
    )
    (workdir / "steady-writes.json").write_text(json.dumps(steady_writes, indent=1))
    if steady_writes:
        kinds = Counter(
            f"{w.get('verb')} {w.get('objectRef', {}).get('resource')}"
            f"/{w.get('objectRef', {}).get('subresource') or ''}"
            for w in steady_writes
        )
        progress(f"[{label}] operator writes in the steady window: {dict(kinds)}")
    status_latencies = [c.status_seen_after for c in changes if c.status_seen_after is not None]
    event_latencies = [c.event_seen_after for c in changes if c.event_seen_after is not None]
    detected = sum(
        1 for c in changes if c.status_seen_after is not None and c.event_seen_after is not None
    )
    (workdir / "changes.json").write_text(json.dumps([_change_json(c) for c in changes], indent=1))
    figures = OperatorFigures(
        label=label,
        watches=plan.watches,
        convergence_seconds=convergence,
        settle_seconds=settle,
        steady_seconds=cpu.wall,
        cpu_seconds=cpu.seconds,
        cpu_percent=cpu.percent_of_core,
        peak_rss_mib=rss,
        polls=requests_end[1] - requests_start[1],
        cce_requests_per_second=(requests_end[0] - requests_start[0]) / cpu.wall,
        kube_writes=writes_end - writes_start,
        kube_writes_by_operator=len(steady_writes),
        drift_p50=percentile(drifts, 0.50),
        drift_p99=percentile(drifts, 0.99),
        drift_samples=len(drifts),
        detection_status_p50=percentile(status_latencies, 0.50),
        detection_status_p99=percentile(status_latencies, 0.99),
        detection_event_p50=percentile(event_latencies, 0.50),
        detection_event_p99=percentile(event_latencies, 0.99),
        changes_forced=len(changes),
        changes_detected=detected,
        writes_per_change=len(detection_writes) / len(changes) if changes else float("nan"),
        load_during=load_during,
        convergence_cpu_operator=convergence_cpu["operator"],
        convergence_cpu_apiserver=convergence_cpu["apiserver"],
        convergence_cpu_etcd=convergence_cpu["etcd"],
        convergence_cpu_benchmark=convergence_cpu["benchmark"],
    )
    return figures, watches


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _cpu_or_nan(pid: int | None) -> float:
    if pid is None:
        return math.nan
    try:
        return cpu_seconds(pid)
    except (OSError, ValueError, IndexError):
        return math.nan


def snapshot_memory(pid: int, profile: Profile, watches: int, label: str, progress: Any) -> None:
    """tracemalloc snapshot of the converged operator, and its report (`memprofile`)."""
    rss = memory_kib(pid, "VmRSS") / 1024
    progress(f"[{label}] tracemalloc snapshot of the operator (RSS {rss:.1f} MiB)")
    if not memprofile.request_snapshot(pid, profile.snapshot):
        progress(f"[{label}] no tracemalloc snapshot came; see the operator log")
        return
    memprofile.write_report(
        profile.snapshot, profile.memory_report, watches=watches, rss_mib=rss, label=label
    )
    progress(f"[{label}] memory report: {profile.memory_report}")


def start_profiler(pid: int, seconds: float, profile: Profile) -> subprocess.Popen[bytes] | None:
    """py-spy (`pip install py-spy`; only for profiling, not a project dependency)
    sampling the operator, as collapsed stacks; None when it is not installed.

    It samples without pausing the process (`--nonblocking`); tracemalloc (also on
    with `--profile`) slows the operator, so judge figures from runs without one.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return None
    argv = [
        py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
        "--rate", "250", "--nonblocking", "--format", "raw", "--output", str(profile.cpu_stacks),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "object": "/".join(change.watch.key),
        "task": change.task,
        "status": change.status,
        "forcedAt": change.forced_at,
        "statusSeenAfter": change.status_seen_after,
        "eventSeenAfter": change.event_seen_after,
    }
