"""The end-to-end benchmark of cce-upgrade-watch (`make bench`, `python -m benchmarks.bench`).

Not part of the pass/fail tests: only a small-N smoke run
(`tests/e2e/test_bench_smoke.py`) checks that it still runs.
"""
