"""Runs the SDK baseline (`sdk_baseline.py`) as a process against the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.controlplane import REPO_ROOT

from benchmarks.fleet import Watch


@dataclass(frozen=True)
class BaselineFigures:
    polls: int
    errors: int
    cpu_seconds: float
    wall_seconds: float
    threads: int

    @property
    def cpu_seconds_per_1000_polls(self) -> float:
        return 1000 * self.cpu_seconds / self.polls if self.polls else float("nan")

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


def run_sdk_baseline(
    sim_url: str,
    watches: list[Watch],
    *,
    active_interval: float,
    idle_interval: float,
    duration: float,
    workdir: Path,
    threads: int = 32,
) -> BaselineFigures:
    clusters_file = workdir / "baseline-clusters.json"
    clusters = [
        {"clusterId": w.cluster_id, "interval": active_interval if w.active else idle_interval}
        for w in watches
    ]
    clusters_file.write_text(json.dumps(clusters))
    argv = [
        sys.executable, "-m", "benchmarks.sdk_baseline",
        "--endpoint", sim_url, "--clusters", str(clusters_file),
        "--duration", str(duration), "--threads", str(threads),
    ]  # fmt: skip
    with (workdir / "baseline.log").open("wb") as log:
        result = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=log,
            timeout=duration + 300,
            check=True,
            cwd=REPO_ROOT,  # where `benchmarks` is importable from
        )
    body = json.loads(result.stdout)
    return BaselineFigures(
        polls=int(body["polls"]),
        errors=int(body["errors"]),
        cpu_seconds=float(body["cpuSeconds"]),
        wall_seconds=float(body["wallSeconds"]),
        threads=threads,
    )
