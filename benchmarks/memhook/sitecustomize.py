"""Loaded into the operator process only by `python -m benchmarks.bench --profile`
(this directory is put on the operator's PYTHONPATH; nothing else imports it).

It starts tracemalloc before anything else is imported, so every allocation of
the operator is traced with its traceback, and dumps a snapshot to the file
named by `CCE_BENCH_TRACEMALLOC_OUT` on SIGUSR2 (written under a temporary name,
then renamed, so the benchmark reads only a complete file).
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from types import FrameType

_FRAMES = os.environ.get("CCE_BENCH_TRACEMALLOC_FRAMES", "")
_OUT = os.environ.get("CCE_BENCH_TRACEMALLOC_OUT", "")


def _dump(_signum: int, _frame: FrameType | None) -> None:
    snapshot = tracemalloc.take_snapshot()
    partial = _OUT + ".partial"
    snapshot.dump(partial)
    os.replace(partial, _OUT)


if _FRAMES.isdigit() and _OUT:
    tracemalloc.start(int(_FRAMES))
    signal.signal(signal.SIGUSR2, _dump)
