"""The benchmark harness's own logic: repeat statistics, arguments, run order,
targets and the memory report. (The benchmark end to end: tests/e2e/test_bench_smoke.py.)"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import sysconfig
import tracemalloc
from pathlib import Path

import pytest
from benchmarks.baseline import BaselineFigures
from benchmarks.bench import parse_args, run_order
from benchmarks.measure import OperatorFigures
from benchmarks.memprofile import (
    operator_env,
    owner,
    render_report,
    request_snapshot,
    start_tracing,
)
from benchmarks.report import Targets, failed_targets, median_figures, render_spreads, summarize
from benchmarks.stats import Spread, spread, spreads

from tests.support.waiting import wait_until


def figures(**changes: object) -> OperatorFigures:
    base = OperatorFigures(
        label="now", watches=1000, convergence_seconds=10.0, settle_seconds=1.0,
        steady_seconds=300.0, cpu_seconds=1.0, cpu_percent=0.3, peak_rss_mib=100.0,
        polls=2000, cce_requests_per_second=6.6, kube_writes=0, kube_writes_by_operator=0,
        drift_p50=0.0, drift_p99=0.5, drift_samples=2000, detection_status_p50=15.0,
        detection_status_p99=30.0, detection_event_p50=15.0, detection_event_p99=30.0,
        changes_forced=40, changes_detected=40, writes_per_change=2.0, load_during=0.1,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------------ statistics


def test_spread_of_an_odd_count_is_its_middle_value() -> None:
    assert spread([3.0, 1.0, 2.0]) == Spread(1.0, 2.0, 3.0)


def test_spread_of_an_even_count_takes_the_mean_of_the_middle_two() -> None:
    assert spread([4.0, 1.0, 2.0, 3.0]) == Spread(1.0, 2.5, 4.0)


def test_spread_ignores_nan_and_is_nan_without_numbers() -> None:
    assert spread([math.nan, 5.0]) == Spread(5.0, 5.0, 5.0)
    assert all(math.isnan(v) for v in dataclasses.astuple(spread([math.nan])))
    assert all(math.isnan(v) for v in dataclasses.astuple(spread([])))


def test_spreads_cover_numbers_present_in_every_run_only() -> None:
    runs = [
        {"label": "a", "cpu": 1.0, "polls": 10, "ok": True, "only_first": 1.0},
        {"label": "b", "cpu": 3.0, "polls": 30, "ok": False},
        {"label": "c", "cpu": 2.0, "polls": 20, "ok": True},
    ]
    assert spreads(runs) == {"cpu": Spread(1.0, 2.0, 3.0), "polls": Spread(10.0, 20.0, 30.0)}


def test_median_figures_take_each_field_s_median_and_keep_counts_whole() -> None:
    runs = [figures(cpu_seconds=c, polls=p) for c, p in ((1.0, 1999), (3.0, 2000), (2.0, 2002))]
    median = median_figures(runs)
    assert (median.cpu_seconds, median.polls, median.label) == (2.0, 2000, "now")
    even = median_figures([figures(polls=1999), figures(polls=2002)])
    assert isinstance(even.polls, int)
    assert even.polls == 2000


def test_median_of_baselines() -> None:
    runs = [BaselineFigures(polls=p, errors=0, cpu_seconds=c, wall_seconds=300.0, threads=32)
            for p, c in ((100, 1.0), (300, 2.0), (200, 9.0))]  # fmt: skip
    assert median_figures(runs) == BaselineFigures(200, 0, 2.0, 300.0, 32)


def test_spread_table_has_a_column_per_variant_and_a_row_per_figure() -> None:
    summary = summarize(
        {"at abc": [{"cpu": 1.0}, {"cpu": 3.0}], "now": [{"cpu": 0.5, "rss": 120.0}] * 2}
    )
    table = render_spreads(summary, runs=2)
    assert "at abc: min / median / max" in table
    assert "now: min / median / max" in table
    cpu_row = next(line for line in table.splitlines() if line.startswith("| cpu "))
    assert "1 / 2 / 3" in cpu_row
    assert "0.5 / 0.5 / 0.5" in cpu_row
    rss_row = next(line for line in table.splitlines() if line.startswith("| rss "))
    assert "120 / 120 / 120" in rss_row


# ------------------------------------------------------------------ targets


def test_targets_of_the_10k_fleet_are_the_issue_s() -> None:
    small, large = Targets.for_watches(1000), Targets.for_watches(10_000)
    assert (small.convergence_seconds, small.peak_rss_mib) == (60, 250)
    assert (large.convergence_seconds, large.peak_rss_mib) == (120, 500)
    assert large.sdk_ratio == 5
    assert large.drift_p99 == 1
    assert large.detection_slack == 1


def test_a_target_is_judged_on_the_figures_given() -> None:
    baseline = BaselineFigures(polls=1000, errors=0, cpu_seconds=4.0, wall_seconds=300, threads=32)
    good = figures(cpu_seconds=0.7, polls=1000)  # 5.7x
    assert failed_targets(good, baseline, active_interval=30) == []
    missed = failed_targets(
        figures(cpu_seconds=1.0, polls=1000, detection_status_p99=31.5), baseline, 30
    )
    assert missed == [
        "detection: status shows it, p50 / p99 (s)",
        "CPU per poll: SDK baseline / operator",
    ]


# ------------------------------------------------------------------ arguments, order


def test_repeat_defaults_to_one_and_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args([]).repeat == 1
    assert parse_args(["--repeat", "3", "--compare-ref", "main"]).repeat == 3
    with pytest.raises(SystemExit):
        parse_args(["--repeat", "0"])
    assert "--repeat must be at least 1" in capsys.readouterr().err


def test_profile_takes_a_directory_and_a_frame_depth() -> None:
    args = parse_args(["--profile", "prof", "--profile-frames", "4"])
    assert (args.profile, args.profile_frames) == (Path("prof"), 4)
    assert parse_args([]).profile is None


def test_variants_alternate_in_every_repetition() -> None:
    assert run_order(["at main", "now"], 2) == [
        (0, "at main"), (0, "now"), (1, "at main"), (1, "now"),
    ]  # fmt: skip
    assert run_order(["operator"], 3) == [(0, "operator"), (1, "operator"), (2, "operator")]


# ------------------------------------------------------------------ memory report


def test_an_allocation_belongs_to_the_newest_frame_outside_the_standard_library() -> None:
    stdlib = sysconfig.get_paths()["stdlib"]
    # Traceback takes the most recent frame first.
    traceback = tracemalloc.Traceback(
        (
            (f"{stdlib}/copy.py", 10),
            ("/venv/lib/python3.11/site-packages/kopf/_core/reactor/processing.py", 5),
            ("/repo/operator/cce_upgrade_watch/handlers.py", 1),
        )
    )
    assert owner(traceback) == "kopf"
    ours = tracemalloc.Traceback((("/repo/operator/cce_upgrade_watch/cce/client.py", 3),))
    assert owner(ours) == "cce_upgrade_watch.cce.client"
    only_stdlib = tracemalloc.Traceback(((f"{stdlib}/asyncio/events.py", 80),))
    assert owner(only_stdlib) == "stdlib:asyncio"


def _allocate() -> list[bytearray]:
    return [bytearray(50_000) for _ in range(20)]


def test_the_report_names_the_allocating_line_and_divides_by_watches() -> None:
    tracemalloc.start(5)
    try:
        kept = _allocate()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    report = render_report(snapshot, watches=10, rss_mib=42.0)
    assert kept
    assert "RSS at the snapshot: 42.0 MiB" in report
    line = next(line for line in report.splitlines() if "test_harness.py:" in line)
    kib, per_watch = line.split()[:2]
    assert float(kib) >= 20 * 50_000 / 1024 * 0.99
    assert float(per_watch) >= 20 * 50_000 / 10 * 0.99


def test_the_hook_goes_first_on_the_operator_s_pythonpath(tmp_path: Path) -> None:
    env = operator_env(7, tmp_path / "snap", "/ref/operator")
    path = env["PYTHONPATH"].split(":")
    assert path[0].endswith("benchmarks/memhook")
    assert path[1] == "/ref/operator"
    assert (Path(path[0]) / "sitecustomize.py").exists()
    assert env["CCE_BENCH_TRACEMALLOC_FRAMES"] == "7"


def test_the_hook_traces_from_its_start_signal_and_dumps_on_request(tmp_path: Path) -> None:
    snapshot_path = tmp_path / "memory.tracemalloc"
    before_done, kept_done = tmp_path / "before", tmp_path / "kept"
    script = (
        "import pathlib, time, tracemalloc\n"
        "deadline = time.monotonic() + 60\n"
        "before = [bytearray(10_000) for _ in range(50)]\n"
        f"pathlib.Path({str(before_done)!r}).touch()\n"
        "while not tracemalloc.is_tracing() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "kept = [bytearray(10_000) for _ in range(100)]\n"
        f"pathlib.Path({str(kept_done)!r}).touch()\n"
        f"done = pathlib.Path({str(snapshot_path)!r})\n"
        "while not done.exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
    )
    env = {**os.environ, **operator_env(3, snapshot_path)}
    with subprocess.Popen([sys.executable, "-c", script], env=env) as process:
        wait_until(before_done.exists, timeout=30, message="the child never started")
        start_tracing(process.pid)
        wait_until(kept_done.exists, timeout=30, message="tracing never started")
        assert request_snapshot(process.pid, snapshot_path, timeout=30)
        assert process.wait(timeout=60) == 0
    stats = tracemalloc.Snapshot.load(str(snapshot_path)).statistics("lineno")
    lines = {
        s.traceback[-1].lineno: s.size for s in stats if s.traceback[-1].filename == "<string>"
    }
    assert lines.get(7, 0) >= 1_000_000, lines  # `kept`, after tracing started
    assert 3 not in lines, lines  # `before` was allocated before: not traced
