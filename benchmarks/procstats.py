"""What /proc says about one process: CPU time used so far and peak resident memory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (all its threads, not its children)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 (utime) and 15 (stime), counted from 1, are 11 and 12 after the name.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_kib(pid: int, field: str) -> int:
    """A memory line of /proc/PID/status in KiB, e.g. `VmHWM` (peak RSS) or `VmRSS`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"/proc/{pid}/status has no {field}")


def peak_rss_mib(pid: int) -> float:
    return memory_kib(pid, "VmHWM") / 1024


def load_average_1min() -> float:
    return os.getloadavg()[0]


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds of a process at a wall-clock moment (monotonic seconds)."""

    at: float
    cpu: float


@dataclass(frozen=True)
class CpuUse:
    seconds: float  # CPU seconds used between two samples
    wall: float  # wall-clock seconds between them

    @property
    def percent_of_core(self) -> float:
        return 100.0 * self.seconds / self.wall if self.wall > 0 else 0.0


def cpu_between(first: CpuSample, last: CpuSample) -> CpuUse:
    return CpuUse(seconds=last.cpu - first.cpu, wall=last.at - first.at)
