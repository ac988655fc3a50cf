"""Which data field a schema error is about, as a JSON Pointer into the request body.

The codec names a field either by its path (``field address.postcode``, from the hub's own
constraints) or by fastavro's qualified name (``field uk.csp.common.Address.district``):
the record's full name then the field. This maps both to ``/data/address/district``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = ["pointer_for"]

_FIELD = re.compile(r"\bfield ([A-Za-z_][\w.]*(?:\[\d+\])?[\w.\[\]]*)")
_UNEXPECTED = re.compile(r"unexpected field\(s\) '([^']+)'")


def pointer_for(schema: Any, message: str) -> str:
    """The JSON Pointer (RFC 6901) of the field ``message`` names, or ``/data`` if none."""
    found = _FIELD.search(message)
    if found is not None:
        name = found.group(1).rstrip(".:")
        paths: dict[str, str] = {}
        for qualified, dotted in _qualified(schema, prefix=""):
            paths.setdefault(qualified, dotted)  # a record used twice: its first place
        path = paths.get(name, name)
        return "/data/" + "/".join(_segments(path))
    unexpected = _UNEXPECTED.search(message)
    if unexpected is not None:
        return "/data/" + _escape(unexpected.group(1))
    return "/data"


def _segments(path: str) -> Iterator[str]:
    for part in path.split("."):
        name, *indexes = re.split(r"\[(\d+)\]", part)
        yield _escape(name)
        yield from (i for i in indexes if i)


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _qualified(schema: Any, prefix: str) -> Iterator[tuple[str, str]]:
    """(fastavro's ``<record full name>.<field>``, dotted path) for every field."""
    if isinstance(schema, str):
        return  # a reference to a record named earlier: its fields are listed there
    if isinstance(schema, list):
        for branch in schema:
            yield from _qualified(branch, prefix)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind == "record":
        full = schema["name"]
        if "." not in full and schema.get("namespace"):
            full = f"{schema['namespace']}.{full}"
        for field in schema["fields"]:
            path = f"{prefix}{field['name']}"
            yield f"{full}.{field['name']}", path
            yield from _qualified(field["type"], f"{path}.")
    elif kind == "array":
        yield from _qualified(schema["items"], prefix)
    elif isinstance(kind, dict | list):
        yield from _qualified(kind, prefix)
