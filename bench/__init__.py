"""``make bench``: the hub's benchmarks, their recorded results and the docs' tables.

``python -m bench [NAME ...]`` runs all (or the named) benchmarks, writes
``bench/results/<name>.json`` and re-renders the tables of ``docs/benchmarks.md``. Adding one:
a module exposing ``BENCHMARK = Benchmark(...)`` plus one line in ``bench.registry``.
Speed is measured here and never asserted in tests.
"""

from __future__ import annotations

from bench._harness import Benchmark, Measured, Stats, machine_info, run_benchmark, time_calls
from bench.page import update_page
from bench.registry import load, names

__all__ = [
    "Benchmark",
    "Measured",
    "Stats",
    "load",
    "machine_info",
    "names",
    "run_benchmark",
    "time_calls",
    "update_page",
]
