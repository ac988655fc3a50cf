"""Refresh the lock (``make lock``): ``uv.lock``, then the pip files exported from it.

``uv.lock`` is the one resolution (every platform and Python the project supports). The
production image installs with plain pip from files exported from it, with hashes (``pip
install --require-hashes --no-deps``), so it needs no uv; CI's virtualenv installs the same
files with uv (``uv pip install --require-hashes --no-deps``), itself installed by pip:

- ``requirements/hub.txt``: the hub itself, no extras (the production image);
- ``requirements/embedded.txt``, ``requirements/postgres.txt``: what each extra adds to it
  (the image's ``EXTRAS`` build argument installs them on top);
- ``requirements/dev.txt``: everything for development and CI (``[dev]``, which pulls both);
- ``requirements/uv.txt``: uv alone, as ``dev.txt`` pins it: ``make venv`` installs it with
  pip, then ``dev.txt`` with uv (from uv's cache, about 5x faster than pip on a fresh clone).

Usage: ``python scripts/lock.py [--upgrade]`` (``make lock``; ``uv`` from the dev tools).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "requirements"
EXTRAS = ("embedded", "postgres", "strategic")
HEADER = "# Exported from uv.lock by `make lock` (scripts/lock.py): do not edit.\n"


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"  # the venv's own (a dev dependency)
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise SystemExit("error: uv not found: `make venv` installs it with the dev tools")
    return found


def export(*extras: str) -> str:
    """The locked requirements (with hashes) of the hub with these extras."""
    args = [_uv(), "export", "--frozen", "--no-emit-project", "--no-header", "--no-annotate"]
    for extra in extras:
        args += ["--extra", extra]
    result = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True)  # noqa: S603
    return result.stdout


def entries(text: str) -> dict[str, str]:
    """Requirement name -> its whole entry (the pin line and its hash lines)."""
    found: dict[str, str] = {}
    name = ""
    for line in text.splitlines(keepends=True):
        if not line.strip() or line.startswith("#"):
            continue
        if not line[0].isspace():
            name = line.split("==", 1)[0].strip().lower()
            found[name] = ""
        found[name] += line
    return found


def main() -> None:
    """Lock, then write the exported files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="newest versions the ranges allow")
    upgrade = parser.parse_args().upgrade
    subprocess.run(  # noqa: S603
        [_uv(), "lock", *(["--upgrade"] if upgrade else [])], cwd=ROOT, check=True
    )
    OUT.mkdir(exist_ok=True)
    base = export()
    (OUT / "hub.txt").write_text(HEADER + base)
    pinned = entries(base)
    for extra in EXTRAS:
        added = [entry for name, entry in entries(export(extra)).items() if name not in pinned]
        (OUT / f"{extra}.txt").write_text(
            HEADER + f"# what the [{extra}] extra adds to hub.txt\n" + "".join(added)
        )
    dev = export("dev")
    (OUT / "dev.txt").write_text(HEADER + dev)
    # `make venv` installs uv alone first (pip, hash-checked), then everything else with it
    (OUT / "uv.txt").write_text(HEADER + "# uv alone, as dev.txt pins it\n" + entries(dev)["uv"])
    print(f"wrote uv.lock and {', '.join(sorted(p.name for p in OUT.glob('*.txt')))}")


if __name__ == "__main__":
    main()
