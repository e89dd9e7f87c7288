"""`--profile`, memory side: tracemalloc in the operator process, one snapshot once
it has converged, and a plain-text report of where the memory went.

The hook (`memhook/sitecustomize.py`) is put on the operator's PYTHONPATH; it
starts tracing on SIGUSR1 (sent just before the watches are created, so the
snapshot holds what the watches cost, not the imports) and dumps a snapshot on
SIGUSR2. tracemalloc counts Python
allocations only (not the interpreter's own arenas' slack, not C libraries'
buffers), so the traced total is below the RSS; the report names both.
"""

from __future__ import annotations

import os
import signal
import sys
import sysconfig
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

HOOK_DIRECTORY = Path(__file__).parent / "memhook"
FRAMES_ENV = "CCE_BENCH_TRACEMALLOC_FRAMES"
OUT_ENV = "CCE_BENCH_TRACEMALLOC_OUT"
#: Packages reported on their own in the owner breakdown (else: "other").
_STDLIB = str(Path(sysconfig.get_paths()["stdlib"]).resolve())


def operator_env(frames: int, snapshot_path: Path, pythonpath: str = "") -> dict[str, str]:
    """What the operator's environment needs for the hook; `pythonpath` goes after it."""
    path = os.pathsep.join(p for p in (str(HOOK_DIRECTORY), pythonpath) if p)
    return {"PYTHONPATH": path, FRAMES_ENV: str(frames), OUT_ENV: str(snapshot_path)}


def start_tracing(pid: int) -> None:
    """Start tracemalloc in the operator (the hook's SIGUSR1)."""
    os.kill(pid, signal.SIGUSR1)


def request_snapshot(pid: int, snapshot_path: Path, timeout: float = 300.0) -> bool:
    """Ask the operator for a snapshot and wait (up to `timeout`) for the file."""
    snapshot_path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if snapshot_path.exists():
            return True
        time.sleep(0.5)  # polling a file the other process writes, bounded above
    return False


def owner(traceback: tracemalloc.Traceback) -> str:
    """Who made an allocation: the package of the most recent frame outside the
    standard library (`kopf`, `kubernetes`, `cce_upgrade_watch.pollloop`, ...), or
    `stdlib:<module>` when every kept frame is in the standard library."""
    stdlib_module = ""
    for frame in reversed(traceback):  # most recent first
        name = _package_of(frame.filename)
        if name.startswith("stdlib:"):
            stdlib_module = stdlib_module or name
            continue
        return name
    return stdlib_module or "unknown"


def _package_of(filename: str) -> str:
    path = filename.replace("\\", "/")
    if "/cce_upgrade_watch/" in path:
        tail = path.rsplit("/cce_upgrade_watch/", 1)[1]
        return "cce_upgrade_watch." + tail.removesuffix(".py").replace("/", ".")
    if "site-packages/" in path:
        return path.rsplit("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith("<frozen") or path.startswith(_STDLIB) or "/lib/python3" in path:
        module = path.rsplit("/", 1)[-1].removesuffix(".py").strip("<>")
        parent = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
        return (
            f"stdlib:{parent}"
            if parent in ("asyncio", "json", "concurrent", "logging")
            else (f"stdlib:{module}")
        )
    return path.rsplit("/", 1)[-1]


def by_owner(statistics: Iterable[tracemalloc.Statistic]) -> dict[str, tuple[int, int]]:
    """Bytes and blocks per owner (see `owner`)."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for stat in statistics:
        entry = totals[owner(stat.traceback)]
        entry[0] += stat.size
        entry[1] += stat.count
    return {name: (size, count) for name, (size, count) in totals.items()}


def render_report(
    snapshot: tracemalloc.Snapshot,
    *,
    watches: int,
    rss_mib: float,
    top: int = 40,
    context: Mapping[str, str] | None = None,
) -> str:
    """The report: totals, by owner, top lines, top tracebacks; KiB and bytes/watch."""
    snapshot = snapshot.filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<unknown>")]
    )
    traces = snapshot.statistics("traceback")
    total = sum(stat.size for stat in traces)
    blocks = sum(stat.count for stat in traces)
    lines = [
        f"tracemalloc snapshot of the operator with {watches} watches, once converged "
        "(traced from just before the first create: imports and start-up not included)",
        *(f"{key}: {value}" for key, value in (context or {}).items()),
        f"traced: {total / 2**20:.1f} MiB in {blocks} blocks "
        f"({total / watches / 1024:.1f} KiB per watch); "
        f"RSS at the snapshot: {rss_mib:.1f} MiB",
        "",
        "by owner (the most recent frame outside the standard library):",
        f"{'KiB':>10} {'B/watch':>9} {'blocks':>9}  owner",
    ]
    owners = sorted(by_owner(traces).items(), key=lambda item: -item[1][0])
    for name, (size, count) in owners[:top]:
        lines.append(f"{size / 1024:10.0f} {size / watches:9.0f} {count:9d}  {name}")
    lines += ["", f"top {top} lines:", f"{'KiB':>10} {'B/watch':>9} {'blocks':>9}  line"]
    for stat in snapshot.statistics("lineno")[:top]:
        frame = stat.traceback[-1]
        lines.append(
            f"{stat.size / 1024:10.0f} {stat.size / watches:9.0f} {stat.count:9d}  "
            f"{_short(frame.filename)}:{frame.lineno}"
        )
    lines += ["", f"top {top // 2} tracebacks (most recent frame last):"]
    for stat in traces[: top // 2]:
        lines.append(
            f"{stat.size / 1024:.0f} KiB, {stat.size / watches:.0f} B/watch, {stat.count} blocks"
        )
        lines.extend(f"    {_short(f.filename)}:{f.lineno}" for f in stat.traceback)
    return "\n".join(lines) + "\n"


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/operator/", "/lib/python3."):
        if marker in filename:
            return filename.rsplit(marker, 1)[1]
    return filename


def write_report(
    snapshot_path: Path, report_path: Path, *, watches: int, rss_mib: float, label: str
) -> None:
    snapshot = tracemalloc.Snapshot.load(str(snapshot_path))
    report_path.write_text(
        render_report(
            snapshot,
            watches=watches,
            rss_mib=rss_mib,
            context={"variant": label, "python": sys.version.split()[0]},
        )
    )
