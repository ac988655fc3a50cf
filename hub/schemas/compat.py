"""FULL (backward and forward) compatibility of an event schema against its released copy.

Producers and consumers of an event type upgrade at different times, so a released schema may
only change in ways that let both sides keep reading each other: data written with the old
schema must be readable with the new one (backward) and data written with the new schema must
be readable with the old one (forward). Rather than re-implement the Avro resolution rules,
the check *runs* them: it writes sample records with one schema and reads them back with the
other through fastavro's schema resolution, so it agrees with the library the hub really uses.

Samples are a deterministic set that uses every enum symbol and every union branch (so removing
a symbol or a branch is always caught, not only when a random record happens to use it) plus
seeded random records from ``fastavro.utils.generate_many``. The check covers the Avro wire
contract only: the hub's own ``hub_pattern``/``hub_min``/``hub_max`` properties and logical
type annotations are not compared.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastavro
import fastavro.utils

__all__ = ["check_compatible", "check_lock"]

_SEED = 20261119
_MAX_DEPTH = 16
_MAX_PROBLEMS_PER_DIRECTION = 5
_MAX_MESSAGE = 240


def check_compatible(old: dict[str, Any], new: dict[str, Any], *, samples: int = 50) -> list[str]:
    """Problems that stop ``new`` from replacing ``old`` under FULL compatibility.

    An empty list means compatible. Each problem names its direction (``backward``: old data,
    new reader; ``forward``: new data, old reader) and the first resolution error seen.
    """
    try:
        old_named: dict[str, Any] = {}
        new_named: dict[str, Any] = {}
        old_parsed = fastavro.parse_schema(old, named_schemas=old_named)
        new_parsed = fastavro.parse_schema(new, named_schemas=new_named)
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        return [f"schema cannot be parsed: {exc}"]
    problems: list[str] = []
    directions = (
        ("backward", "old", "new", old, old_parsed, old_named, new_parsed),
        ("forward", "new", "old", new, new_parsed, new_named, old_parsed),
    )
    for direction, wrote, read, raw, writer, named, reader in directions:
        seen: set[str] = set()
        for record in _samples(raw, writer, named, samples):
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, writer, record)
            buf.seek(0)
            try:
                fastavro.schemaless_reader(buf, writer, reader)
            except Exception as exc:  # SchemaResolutionError, but also KeyError, ValueError...
                message = (
                    f"{direction}: data written with the {wrote} schema cannot be read with "
                    f"the {read} schema: {_short(exc)}"
                )
                if message not in seen:
                    seen.add(message)
                    problems.append(message)
                if len(seen) >= _MAX_PROBLEMS_PER_DIRECTION:
                    break
    return problems


def check_lock(schema_dir: Path, lock_dir: Path, *, samples: int = 50) -> dict[str, list[str]]:
    """Problems per locked event type when ``schema_dir`` replaces the release in ``lock_dir``.

    Only types with problems appear. A type in ``schema_dir`` with no lock yet is new and fine;
    a locked type whose schema file is gone is a problem, because its consumers still exist.
    """
    found: dict[str, list[str]] = {}
    for locked in sorted(lock_dir.glob("*.avsc")):
        current = schema_dir / locked.name
        event_type = locked.name.removesuffix(".avsc")
        if not current.is_file():
            found[event_type] = [f"schema file {current.name} was removed from {schema_dir}"]
            continue
        problems = check_compatible(
            json.loads(locked.read_text()), json.loads(current.read_text()), samples=samples
        )
        if problems:
            found[event_type] = problems
    return found


def _short(exc: Exception) -> str:
    """The error in one line: fastavro's mismatch messages print both whole schemas."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def _samples(raw: dict[str, Any], parsed: Any, named: dict[str, Any], count: int) -> Iterator[Any]:
    yield from _covering(parsed, named)
    state = random.getstate()  # generate_many draws from the global generator
    random.seed(_SEED)
    try:
        randoms = list(fastavro.utils.generate_many(raw, count))
    finally:
        random.setstate(state)
    yield from randoms


def _covering(parsed: Any, named: dict[str, Any]) -> Iterator[Any]:
    """Records that between them use every enum symbol and every union branch."""
    widest = max(_choice_widths(parsed, named, set()), default=1)
    for k in range(widest):
        yield _pick(parsed, named, k, 0)


def _choice_widths(schema: Any, named: dict[str, Any], visiting: set[str]) -> Iterator[int]:
    if isinstance(schema, str):
        if schema in named and schema not in visiting:
            yield from _choice_widths(named[schema], named, visiting | {schema})
        return
    if isinstance(schema, list):
        yield len(schema)
        for branch in schema:
            yield from _choice_widths(branch, named, visiting)
        return
    kind = schema["type"]
    if kind == "enum":
        yield len(schema["symbols"])
    elif kind == "record" or kind == "error":
        inner = visiting | {schema["name"]}
        for field in schema["fields"]:
            yield from _choice_widths(field["type"], named, inner)
    elif kind == "array":
        yield from _choice_widths(schema["items"], named, visiting)
    elif kind == "map":
        yield from _choice_widths(schema["values"], named, visiting)
    elif isinstance(kind, dict | list):
        yield from _choice_widths(kind, named, visiting)


def _pick(schema: Any, named: dict[str, Any], k: int, depth: int) -> Any:
    """The ``k``-th deterministic value of ``schema``: symbol and branch ``k`` (wrapping)."""
    if isinstance(schema, list):
        if depth > _MAX_DEPTH and "null" in schema:
            return None  # stop a recursive schema where it allows stopping
        return _pick(schema[k % len(schema)], named, k, depth + 1)
    if isinstance(schema, str):
        primitive = _PRIMITIVES.get(schema)
        if primitive is not None:
            return primitive(k)
        if schema == "null":
            return None
        return _pick(named[schema], named, k, depth + 1)
    kind = schema["type"]
    if kind == "enum":
        return schema["symbols"][k % len(schema["symbols"])]
    if kind == "fixed":
        return bytes(schema["size"])
    if kind == "record" or kind == "error":
        return {f["name"]: _pick(f["type"], named, k, depth + 1) for f in schema["fields"]}
    if kind == "array":
        return [] if depth > _MAX_DEPTH else [_pick(schema["items"], named, k, depth + 1)]
    if kind == "map":
        return {} if depth > _MAX_DEPTH else {"k": _pick(schema["values"], named, k, depth + 1)}
    return _pick(kind, named, k, depth + 1)


_PRIMITIVES: dict[str, Callable[[int], Any]] = {
    "boolean": lambda k: k % 2 == 1,
    "int": lambda k: k,
    "long": lambda k: k,
    "float": lambda k: float(k),
    "double": lambda k: float(k),
    "bytes": lambda k: bytes([k % 256]),
    "string": lambda k: f"s{k}",
}
