"""``python -m bench [NAME ...]``: run benchmarks, record results, refresh docs/benchmarks.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench._harness import ROOT, run_benchmark
from bench.page import update_page
from bench.registry import load, names

RESULTS = ROOT / "bench" / "results"
#: the documentation site's benchmarks page; the README links to it and is never rewritten
PAGE = ROOT / "docs" / "benchmarks.md"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named in ``argv`` (all if none); 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(names())}")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run only")
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS, help=f"default {RESULTS.relative_to(ROOT)}"
    )
    parser.add_argument(
        "--no-docs", action="store_true", help=f"leave {PAGE.relative_to(ROOT)} alone"
    )
    parser.add_argument(
        "--docs-only",
        action="store_true",
        help=f"re-render {PAGE.relative_to(ROOT)} from recorded results",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name in names():
            print(f"{name:14} {load(name).summary}")
        return 0
    unknown = [n for n in args.names if n not in names()]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: expected {', '.join(names())}")
    if not args.docs_only:
        for name in args.names or names():
            benchmark = load(name)
            print(f"bench {name}: {benchmark.summary}", flush=True)
            t0 = time.perf_counter()
            path = run_benchmark(benchmark, results_dir=args.results_dir, quick=args.quick)
            print(f"bench {name}: {time.perf_counter() - t0:.1f} s -> {path}", flush=True)
    if not args.no_docs:
        changed = update_page(PAGE, args.results_dir)
        print(f"{PAGE.relative_to(ROOT)}: tables {'updated' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
