"""``python -m bench [NAME ...]``: run benchmarks, record results, refresh docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

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
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter (VALUE as JSON, else a string), e.g. --set soak_s=0 "
        "--set 'workers=[1]'; the result file records the parameters used",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    try:
        overrides = dict(_override(item) for item in args.set)
    except ValueError as exc:
        parser.error(str(exc))

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
            unknown_params = sorted(set(overrides) - set(benchmark.defaults))
            if unknown_params:
                parser.error(
                    f"bench {name}: no parameter {', '.join(unknown_params)}: expected any "
                    f"of {', '.join(sorted(benchmark.defaults))}"
                )
            path = run_benchmark(
                benchmark, results_dir=args.results_dir, quick=args.quick, overrides=overrides
            )
            print(f"bench {name}: {time.perf_counter() - t0:.1f} s -> {path}", flush=True)
    if not args.no_docs:
        changed = update_page(PAGE, args.results_dir)
        print(f"{PAGE.relative_to(ROOT)}: tables {'updated' if changed else 'unchanged'}")
    return 0


def _override(item: str) -> tuple[str, Any]:
    """``NAME=VALUE`` from ``--set``: the value as JSON when it parses, else the string."""
    name, sep, text = item.partition("=")
    if not sep or not name:
        raise ValueError(f"--set {item!r}: expected NAME=VALUE")
    try:
        return name, json.loads(text)
    except json.JSONDecodeError:
        return name, text


if __name__ == "__main__":
    sys.exit(main())
