"""Loaded into the operator process only by `python -m benchmarks.bench --profile`
(this directory is put on the operator's PYTHONPATH; nothing else imports it).

On SIGUSR1 it starts tracemalloc (the benchmark sends it just before it creates
the watches, so the snapshot holds what the watches cost, not the imports, and
start-up is not slowed: tracing every import takes the operator past its
liveness timeout); on SIGUSR2 it dumps a snapshot to the file named by
`CCE_BENCH_TRACEMALLOC_OUT` (under a temporary name, then renamed, so the
benchmark reads only a complete file).
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from types import FrameType

_FRAMES = os.environ.get("CCE_BENCH_TRACEMALLOC_FRAMES", "")
_OUT = os.environ.get("CCE_BENCH_TRACEMALLOC_OUT", "")


def _start(_signum: int, _frame: FrameType | None) -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start(int(_FRAMES))


def _dump(_signum: int, _frame: FrameType | None) -> None:
    snapshot = tracemalloc.take_snapshot()
    partial = _OUT + ".partial"
    snapshot.dump(partial)
    os.replace(partial, _OUT)


if _FRAMES.isdigit() and _OUT:
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _dump)
