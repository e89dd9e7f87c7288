"""`make bench` still works: a small, quick run of the benchmark end to end.

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
        "--watches", str(WATCHES), "--quick", "--json", str(figures_path),
    ]  # fmt: skip
    result = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
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

    figures = json.loads(figures_path.read_text())
    (operator,) = figures["operator"]
    assert operator["watches"] == WATCHES
    assert operator["polls"] > 0, "the steady window saw no poll"
    assert operator["kube_writes_by_operator"] == 0, "the operator wrote on unchanged polls"
    assert operator["changes_detected"] == operator["changes_forced"] > 0
    assert figures["baseline"]["polls"] > 0
