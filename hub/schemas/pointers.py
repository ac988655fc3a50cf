"""Name a payload field the way its author wrote it: a JSON Pointer (RFC 6901).

A publisher writes JSON, so an error about ``risk_level`` must say ``/risk_level``, not the
Avro record's full name (fastavro: ``uk.csp.marac.FlagRaisedV1.risk_level``) nor the hub's
dotted path (``address.postcode``, ``markers[2]``). The codec rewrites its messages with
``pointed``; the HTTP ingress puts the same pointer under ``/data`` in its problem details.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = ["field_pointer", "message_pointer", "pointed"]

#: ``field <name>`` in a codec message: an Avro full name, a dotted path, or a pointer
_FIELD = re.compile(r"\bfield (/[^\s:]*|[A-Za-z_][\w.]*(?:\[\d+\])?[\w.\[\]]*)")
_UNEXPECTED = re.compile(r"unexpected field\(s\) '([^']+)'")
#: how the hub's constraint checks name the payload itself
_WHOLE = "payload"


def field_pointer(schema: Any, name: str) -> str:
    """The pointer of a field named by fastavro (full name) or the hub (dotted path)."""
    if name.startswith("/"):
        return name
    if name == _WHOLE:
        return ""
    paths: dict[str, str] = {}
    for qualified, dotted in _qualified(schema, prefix=""):
        paths.setdefault(qualified, dotted)  # a record used twice: its first place
    return "/" + "/".join(_segments(paths.get(name, name)))


def pointed(schema: Any, message: str) -> str:
    """``message`` with the field it names (``field X``) written as a JSON Pointer."""
    found = _FIELD.search(message)
    if found is None:
        return message
    pointer = field_pointer(schema, found.group(1).rstrip(".:")) or "/"
    return f"{message[: found.start(1)]}{pointer}{message[found.end(1) :]}"


def message_pointer(schema: Any, message: str) -> str | None:
    """The pointer of the field a codec message is about, or None if it names none."""
    found = _FIELD.search(message)
    if found is not None:
        return field_pointer(schema, found.group(1).rstrip(".:"))
    unexpected = _UNEXPECTED.search(message)
    if unexpected is not None:
        return "/" + _escape(unexpected.group(1))
    return None


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
