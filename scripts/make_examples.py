"""Write the sample events in examples/events/ from the seeded North Worcestershire scenario.

The examples feed ``hub policy explain --event FILE --as PARTY`` and ``hub publish --data
FILE``; generating them from the scenario keeps them valid whenever a schema or the scenario
changes. Rebuild with ``.venv/bin/python scripts/make_examples.py`` and check that
``git diff --exit-code examples/`` is clean (a unit test regenerates them and compares too).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hub.scenarios.north_worcs import (
    MARAC_RAISED,
    PUBWATCH_BAN,
    RETAIL_EXCLUSION,
    SOCJAG_INTEL,
    sample_event,
)

__all__ = ["EXAMPLES", "main", "render", "write_examples"]

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "examples" / "events"
SEED = 1

#: File name -> (event type, payload fields the sample must hold).
EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "marac-flag-raised-redditch.json": (
        MARAC_RAISED,
        {"address.district": "redditch", "referral_reason": "dash"},
    ),
    "socjag-intel-p.json": (SOCJAG_INTEL, {"handling_code": "P", "classification": "OFFICIAL"}),
    "socjag-intel-c.json": (SOCJAG_INTEL, {"handling_code": "C"}),
    "pubwatch-ban-theft.json": (PUBWATCH_BAN, {"incident_type": "theft"}),
    "pubwatch-ban-violence.json": (PUBWATCH_BAN, {"incident_type": "violence"}),
    "retail-exclusion-theft.json": (RETAIL_EXCLUSION, {"incident_type": "theft"}),
}


def render(event_type: str, where: dict[str, Any]) -> str:
    """The file text for one example: ``{"type", "source", "data"}`` as stable, indented JSON."""
    event = sample_event(event_type, seed=SEED, where=where)
    document = {"type": event.event_type, "source": event.publisher, "data": event.data}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_examples(out: Path) -> list[Path]:
    """Write every example into ``out`` (created if missing) and return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (event_type, where) in EXAMPLES.items():
        path = out / name
        path.write_text(render(event_type, where), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``make_examples.py [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    for path in write_examples(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
