"""Refresh tests/file_costs.json from a full run's ``pytest --durations=0`` output.

    .venv/bin/python -m pytest -n auto --dist loadfile --durations=0 -q > run.log
    .venv/bin/python scripts/file_costs.py run.log

tests/conftest.py hands the costliest files to the xdist workers first; only their order
matters, so a refresh is due when a file's cost moves a lot, not after every change.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

COSTS = Path(__file__).resolve().parent.parent / "tests" / "file_costs.json"
#: a file cheaper than this keeps its collected place (cost 0)
MIN_SECONDS = 8.0
_LINE = re.compile(r"\s*([\d.]+)s (?:setup|call|teardown)\s+(\S+?)::")


def file_costs(log: str) -> dict[str, int]:
    """Seconds per test file (setup, call and teardown summed), costliest first."""
    seconds: dict[str, float] = {}
    for line in log.splitlines():
        if match := _LINE.match(line):
            seconds[match.group(2)] = seconds.get(match.group(2), 0.0) + float(match.group(1))
    costliest = sorted(seconds.items(), key=lambda item: -item[1])
    return {f: round(s) for f, s in costliest if s >= MIN_SECONDS}


def main() -> None:
    """Read the log named on the command line, rewrite tests/file_costs.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="output of pytest --durations=0")
    args = parser.parse_args()
    costs = file_costs(args.log.read_text())
    if not costs:
        raise SystemExit(f"error: no --durations=0 lines in {args.log}: run pytest with it")
    recorded = json.loads(COSTS.read_text())
    recorded["files"] = costs
    COSTS.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"{len(costs)} files written to {COSTS}")


if __name__ == "__main__":
    main()
