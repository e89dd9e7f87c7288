"""`make bench` still works: a small, quick run of the benchmark end to end, run
twice (`--repeat 2`), so the medians and the min / median / max table are built
from real runs.

Only that it completes and measures what it should; no timing is asserted (the
figures belong to `docs/PERFORMANCE.md`, measured on a quiet machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.controlplane import REPO_ROOT

WATCHES = 20


def test_quick_benchmark_prints_the_table_with_zero_idle_writes(tmp_path: Path) -> None:
    figures_path = tmp_path / "figures.json"
    argv = [
        sys.executable, "-m", "benchmarks.bench",
        "--watches", str(WATCHES), "--quick", "--repeat", "2", "--json", str(figures_path),
    ]  # fmt: skip
    result = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-5000:]}"

    table = result.stdout
    for row in (
        "convergence: all N objects carry a status",
        "steady: operator CPU",
        "steady: poll-interval drift",
        "detection: status shows it",
        "idle writes per unchanged poll",
        "CPU s per 1000 polls: SDK baseline",
    ):
        assert row in table, f"no {row!r} row in:\n{table}"

    assert "spread over 2 runs of each variant" in table
    assert "operator: min / median / max" in table
    assert "SDK baseline: min / median / max" in table

    figures = json.loads(figures_path.read_text())
    assert figures["repeat"] == 2
    assert len(figures["runs"]["operator"]) == 2
    assert len(figures["baselineRuns"]) == 2
    assert all(run["kube_writes_by_operator"] == 0 for run in figures["runs"]["operator"])
    assert all(run["sdk_ratio"] > 0 for run in figures["runs"]["operator"])
    spread = figures["summary"]["operator"]["polls"]
    assert spread["min"] <= spread["median"] <= spread["max"]
    (operator,) = figures["operator"]
    assert operator["watches"] == WATCHES
    assert operator["polls"] > 0, "the steady window saw no poll"
    assert operator["kube_writes_by_operator"] == 0, "the operator wrote on unchanged polls"
    assert operator["changes_detected"] == operator["changes_forced"] > 0
    assert figures["baseline"]["polls"] > 0
