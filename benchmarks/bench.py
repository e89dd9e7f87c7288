"""`make bench`: the operator end to end on a real control plane, against the SDK baseline.

    python -m benchmarks.bench --watches 1000            # the full run (about 13 minutes)
    python -m benchmarks.bench --watches 20 --quick      # a short smoke run
    python -m benchmarks.bench --compare-ref HEAD~3      # also the operator of that commit
    python -m benchmarks.bench --repeat 3                # min / median / max of 3 runs
    python -m benchmarks.bench --profile prof/           # CPU (py-spy) and memory (tracemalloc)

Everything runs under a temporary directory: a control plane of its own
(`hack/localcluster`), the simulator and the operator as processes, then the SDK
baseline against the same simulated clusters. Progress goes to stderr; the one
table goes to stdout. `--compare-ref` also measures the operator as it was at a
git commit (its `operator/` tree exported to the work directory and put first on
the operator's PYTHONPATH, on a control plane and simulator of its own), so a
change can be judged before and after in the same run, on the same machine load;
with `--repeat K` the two alternate (ref, now, ref, now, ...), so a drift of the
machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.controlplane import LOCALCLUSTER, REPO_ROOT, ControlPlane, build_binaries
from tests.support.simulator import SimulatorProcess

from benchmarks.baseline import BaselineFigures, run_sdk_baseline
from benchmarks.measure import OperatorFigures, Profile, RunPlan, measure_operator
from benchmarks.procstats import load_average_1min
from benchmarks.report import (
    baseline_figures,
    failed_targets,
    median_figures,
    render,
    render_spreads,
    run_figures,
    summarize,
)
from cce_upgrade_watch.durations import parse_duration

CRD_NAME = "cceupgradewatches.cce.upgradewatch.io"


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--watches", type=int, default=1000, help="N objects (default 1000)")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of the steady-state window, and of the SDK baseline "
        "(default: one idle poll interval, so every cluster is polled in it; --quick: 20)",
    )
    parser.add_argument(
        "--changes",
        type=int,
        default=None,
        help="task changes forced to time detection (default 40; --quick: 4)",
    )
    parser.add_argument("--active-interval", default=None, help="default 30s; --quick: 5s")
    parser.add_argument("--idle-interval", default="5m", help="pollInterval (default 5m)")
    parser.add_argument(
        "--quick", action="store_true", help="short window, few changes, 5s active interval"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the SDK baseline")
    parser.add_argument(
        "--compare-ref",
        metavar="GIT_REF",
        default=None,
        help="also measure the operator as it was at this commit (alternating with the "
        "working tree), for a before/after column",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="run every variant K times (alternating); the table shows the medians, "
        "followed by min / median / max of every figure (default 1)",
    )
    parser.add_argument(
        "--wait-for-load",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for the 1-minute load average to drop below "
        "--load-threshold before starting (default: do not wait)",
    )
    parser.add_argument("--load-threshold", type=float, default=1.0)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="profile the operator into DIR: tracemalloc from start-up, a snapshot and "
        "its report (top allocations by line, by traceback, by owner) once converged; "
        "py-spy (if installed: pip install py-spy) over the steady window. Profiling "
        "slows the operator: judge figures from runs without it",
    )
    parser.add_argument(
        "--profile-frames",
        type=int,
        default=12,
        metavar="N",
        help="frames tracemalloc keeps per allocation with --profile (default 12)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs) and print its path"
    )
    args = parser.parse_args(argv)
    if args.watches < 1:
        parser.error("--watches must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.profile_frames < 1:
        parser.error("--profile-frames must be at least 1")
    if args.duration is None:
        idle = parse_duration(args.idle_interval).total_seconds()
        args.duration = 20.0 if args.quick else idle
    if args.changes is None:
        args.changes = 4 if args.quick else 40
    if args.active_interval is None:
        args.active_interval = "5s" if args.quick else "30s"
    return args


def wait_for_quiet_machine(max_wait: float, threshold: float) -> float:
    """Wait (bounded) for the 1-minute load average to drop below `threshold`."""
    deadline = time.monotonic() + max_wait
    load = load_average_1min()
    while load >= threshold and time.monotonic() < deadline:
        progress(f"load average {load:.2f} >= {threshold}; waiting for a quieter machine")
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
        load = load_average_1min()
    return load


def export_operator_tree(ref: str, destination: Path) -> Path:
    """The `operator/` tree of a commit, to run that operator with PYTHONPATH."""
    destination.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", ref, "operator"],
        check=True,
        stdout=subprocess.PIPE,
    )
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)
    return destination / "operator"


def start_control_plane(directory: Path, bin_dir: Path) -> ControlPlane:
    # Its progress lines go to stderr, so stdout holds only the table.
    subprocess.run(
        [str(LOCALCLUSTER), "start", str(directory)], check=True, stdout=sys.stderr.fileno()
    )
    plane = ControlPlane(directory, bin_dir)
    plane.kubectl("apply", "-k", str(REPO_ROOT / "crds"))
    plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    return plane


def stop_control_plane(plane: ControlPlane) -> None:
    subprocess.run(
        [str(LOCALCLUSTER), "stop", str(plane.directory)], check=False, stdout=sys.stderr.fileno()
    )


def run_variant(
    label: str,
    workdir: Path,
    bin_dir: Path,
    plan: RunPlan,
    operator_path: Path | None,
    baseline_seconds: float | None,
    profile: Profile | None,
) -> tuple[OperatorFigures, BaselineFigures | None]:
    workdir.mkdir(parents=True)
    progress(f"[{label}] starting a control plane in {workdir / 'controlplane'}")
    plane = start_control_plane(workdir / "controlplane", bin_dir)
    simulator = SimulatorProcess(workdir)
    try:
        simulator.start()
        env = {"PYTHONPATH": str(operator_path)} if operator_path else {}
        figures, watches = asyncio.run(
            measure_operator(label, plane, simulator.url, plan, workdir, env, progress, profile)
        )
        baseline = None
        if baseline_seconds is not None:
            progress(f"SDK baseline: polling the same clusters for {baseline_seconds:.0f}s")
            baseline = run_sdk_baseline(
                simulator.url,
                watches,
                active_interval=plan.active_interval,
                idle_interval=plan.idle_interval,
                duration=baseline_seconds,
                workdir=workdir,
            )
        return figures, baseline
    finally:
        simulator.stop()
        stop_control_plane(plane)


def machine_description() -> str:
    cpus = os.cpu_count() or 0
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    python = sys.version.split()[0]
    return f"{cpus} CPUs ({model or 'unknown model'}), {memory_gib:.0f} GiB, Python {python}"


def run_order(labels: Sequence[str], repeat: int) -> list[tuple[int, str]]:
    """(repetition, label) in the order they run: the variants alternate, so a
    drift of the machine's load falls on each alike."""
    return [(rep, label) for rep in range(repeat) for label in labels]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    active = parse_duration(args.active_interval)
    idle = parse_duration(args.idle_interval)
    plan = RunPlan(
        watches=args.watches,
        steady_seconds=args.duration,
        changes=args.changes,
        active_interval=active.total_seconds(),
        idle_interval=idle.total_seconds(),
        active_interval_text=args.active_interval,
        idle_interval_text=args.idle_interval,
    )
    bin_dir = build_binaries()
    load_before = (
        wait_for_quiet_machine(args.wait_for_load, args.load_threshold)
        if args.wait_for_load > 0
        else load_average_1min()
    )
    workdir = Path(tempfile.mkdtemp(prefix="cce-bench-"))
    started = time.monotonic()
    runs: dict[str, list[OperatorFigures]] = {}
    run_json: dict[str, list[dict[str, Any]]] = {}
    baselines: list[BaselineFigures] = []
    try:
        paths: dict[str, Path | None] = {}
        if args.compare_ref:
            ref_tree = export_operator_tree(args.compare_ref, workdir / "ref")
            paths[f"at {args.compare_ref}"] = ref_tree
        paths["operator" if not args.compare_ref else "now"] = None
        labels = list(paths)
        for index, (rep, label) in enumerate(run_order(labels, args.repeat)):
            last_of_repetition = label == labels[-1]
            profile = (
                Profile(args.profile.resolve() / f"{_slug(label)}-{rep + 1}", args.profile_frames)
                if args.profile
                else None
            )
            if args.repeat > 1:
                progress(f"[{label}] run {rep + 1} of {args.repeat}")
            figures, baseline = run_variant(
                label,
                workdir / f"run{index}",
                bin_dir,
                plan,
                paths[label],
                None if args.no_baseline or not last_of_repetition else args.duration,
                profile,
            )
            runs.setdefault(label, []).append(figures)
            progress(f"[{label}] figures: {json.dumps(dataclasses.asdict(figures))}")
            if baseline is not None:
                baselines.append(baseline)
            # Each run's SDK ratio is against the baseline of its own repetition.
            pending = run_json.setdefault(label, [])
            pending.append(run_figures(figures, None))
            if baseline is not None:
                for other in labels:
                    run_json[other][-1] = run_figures(runs[other][-1], baseline)
    finally:
        if args.keep:
            progress(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    medians = [median_figures(runs[label]) for label in labels]
    baseline_median = median_figures(baselines) if baselines else None
    header = [
        f"cce-upgrade-watch benchmark: N={plan.watches} watches in 10 namespaces "
        f"(~10% mid-upgrade), activePollInterval {plan.active_interval_text}, "
        f"pollInterval {plan.idle_interval_text}, steady window {plan.steady_seconds:.0f}s, "
        f"{plan.changes} forced changes"
        + (f"; median of {args.repeat} runs per variant" if args.repeat > 1 else ""),
        f"machine: {machine_description()}; 1-min load {load_before:.2f} before, "
        + ", ".join(
            f"{f.load_during:.2f} during ({f.label})" for label in labels for f in runs[label]
        )
        + f"; run took {time.monotonic() - started:.0f}s",
    ]
    print(render(medians, baseline_median, active_interval=plan.active_interval, header=header))
    summary = summarize(
        {
            **run_json,
            **({"SDK baseline": [baseline_figures(b) for b in baselines]} if baselines else {}),
        }
    )
    if args.repeat > 1:
        print()
        print(render_spreads(summary, args.repeat))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "plan": dataclasses.asdict(plan),
                    "machine": machine_description(),
                    "repeat": args.repeat,
                    "operator": [dataclasses.asdict(f) for f in medians],
                    "baseline": dataclasses.asdict(baseline_median) if baseline_median else None,
                    "runs": run_json,
                    "baselineRuns": [baseline_figures(b) for b in baselines],
                    "summary": {
                        label: {name: item.as_json() for name, item in figures.items()}
                        for label, figures in summary.items()
                    },
                    "loadBefore": load_before,
                },
                indent=1,
            )
        )
    missed = failed_targets(medians[-1], baseline_median, plan.active_interval)
    if missed:
        print(f"\ntargets missed: {'; '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
