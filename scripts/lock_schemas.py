"""Record the current event schemas as the released ones in tests/schema_lock/.

The lock is what partners have already built against: tests/unit/test_schema_compat.py fails
when a schema in hub/schemas/ can no longer read, or be read by, its locked copy. Run this only
for a deliberate, reviewed release: ``.venv/bin/python scripts/lock_schemas.py``. It refuses
(exit 1, nothing written) to replace a locked schema with an incompatible one or to drop a
locked type whose schema was deleted; ``--force-breaking`` does so anyway, for a release that
is meant to break consumers (normally a new ``.vN`` type is the better answer).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from hub.schemas.compat import check_compatible

__all__ = ["main", "plan"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMAS = ROOT / "hub" / "schemas"
DEFAULT_LOCK = ROOT / "tests" / "schema_lock"


def plan(schemas: Path, lock: Path) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """What a relock would do: (file names to copy, locked names to drop, breaking problems).

    Unchanged files are not copied. Problems are keyed by file name; a removed type counts as
    breaking, because its consumers still expect it.
    """
    copy: list[str] = []
    breaking: dict[str, list[str]] = {}
    for current in sorted(schemas.glob("*.avsc")):
        locked = lock / current.name
        if not locked.is_file():
            copy.append(current.name)
            continue
        if locked.read_bytes() == current.read_bytes():
            continue
        copy.append(current.name)
        problems = check_compatible(json.loads(locked.read_text()), json.loads(current.read_text()))
        if problems:
            breaking[current.name] = problems
    drop = sorted(p.name for p in lock.glob("*.avsc") if not (schemas / p.name).is_file())
    for name in drop:
        breaking[name] = [f"locked schema {name} no longer exists in {schemas}"]
    return copy, drop, breaking


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit 1 when a breaking relock is refused."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--schemas", type=Path, default=DEFAULT_SCHEMAS, help="schema directory")
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="lock directory")
    parser.add_argument(
        "--force-breaking",
        action="store_true",
        help="relock even incompatible or removed schemas (breaks existing consumers)",
    )
    args = parser.parse_args(argv)
    schemas: Path = args.schemas
    lock: Path = args.lock
    if not schemas.is_dir():
        print(f"lock_schemas: schema directory {schemas} does not exist", file=sys.stderr)
        return 1
    lock.mkdir(parents=True, exist_ok=True)
    copy, drop, breaking = plan(schemas, lock)
    if breaking:
        for name, problems in breaking.items():
            print(f"lock_schemas: {name} is not compatible with its locked copy:", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
        if not args.force_breaking:
            print(
                "lock_schemas: refusing to relock; publish a new versioned type instead, or "
                "rerun with --force-breaking after the release is agreed. Nothing written.",
                file=sys.stderr,
            )
            return 1
    for name in copy:
        shutil.copyfile(schemas / name, lock / name)
        print(f"locked {name}")
    for name in drop:
        (lock / name).unlink()
        print(f"unlocked {name}")
    if not copy and not drop:
        print("lock_schemas: lock already matches the schemas")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
