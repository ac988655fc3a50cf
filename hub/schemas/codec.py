"""Avro codec (fastavro) for event payloads, with the hub's extra constraints.

Payloads travel as schemaless Avro: the event type names the schema, so no schema id prefix.
Schemas may carry ``hub_pattern``, ``hub_min`` and ``hub_max`` properties (Avro allows extra
attributes) for checks Avro cannot express: reference formats, postcodes, 3x5x2 grades; a
``hub_hint`` beside a ``hub_pattern`` says in words what the pattern expects, for the error.
Decoding rejects trailing bytes, so a payload has exactly one reading.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import fastavro
import fastavro.validation
from fastavro.types import Schema

from hub.errors import EventValidationError, SchemaError
from hub.schemas.pointers import pointed

__all__ = ["SchemaRegistry", "to_jsonable"]

_SCHEMA_DIR = Path(__file__).parent
_MAX_DEPTH = 32
#: decoded Avro values that are JSON values already (exact types: a subclass takes the walk)
_AS_IS = frozenset({str, int, float, bool, type(None)})


def to_jsonable(value: Any) -> Any:
    """Turn decoded Avro (dates, timestamps) into JSON values: ISO 8601 strings."""
    if type(value) in _AS_IS:  # most of a payload: its own JSON value, no isinstance walk
        return value
    if isinstance(value, dict):  # a record: its plain values kept without a call each
        return {k: v if type(v) in _AS_IS else to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class SchemaRegistry:
    """All event schemas known to this hub, by CloudEvents type."""

    def __init__(self, directory: Path = _SCHEMA_DIR) -> None:
        self._raw: dict[str, dict[str, Any]] = {}
        self._parsed: dict[str, Schema] = {}
        self._checks: dict[str, _Check] = {}
        for path in sorted(directory.glob("*.avsc")):
            event_type = path.name.removesuffix(".avsc")
            raw = json.loads(path.read_text())
            try:
                self._parsed[event_type] = fastavro.parse_schema(raw, named_schemas={})
            except Exception as exc:  # fastavro raises several unrelated types
                raise SchemaError(f"schema {path.name}: cannot parse: {exc}") from exc
            try:
                self._checks[event_type] = _constraints(raw, event_type)
            except re.error as exc:
                raise SchemaError(f"schema {path.name}: bad hub_pattern: {exc}") from exc
            self._raw[event_type] = raw

    @property
    def types(self) -> tuple[str, ...]:
        """Every event type with a schema."""
        return tuple(self._raw)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._raw

    def raw(self, event_type: str) -> dict[str, Any]:
        """The schema as written in its ``.avsc`` file."""
        return self._raw[self._known(event_type)]

    def schema(self, event_type: str) -> Schema:
        """The parsed schema."""
        return self._parsed[self._known(event_type)]

    def _known(self, event_type: str) -> str:
        if event_type not in self._raw:
            raise SchemaError(
                f"unknown event type: expected one of {', '.join(sorted(self._raw))}, "
                f"got {event_type!r}"
            )
        return event_type

    @cached_property
    def _paths(self) -> dict[str, frozenset[str]]:
        return {t: frozenset(_field_paths(self._raw[t])) for t in self._raw}

    def field_paths(self, event_type: str) -> frozenset[str]:
        """Dotted paths of every field and sub-field (``address.district``)."""
        return self._paths[self._known(event_type)]

    def encode(self, event_type: str, data: Mapping[str, Any]) -> bytes:
        """Validate a JSON-like payload and encode it as schemaless Avro."""
        schema = self.schema(event_type)
        if _too_deep(data):
            raise EventValidationError(
                f"{event_type}: payload nests deeper than {_MAX_DEPTH} levels; no schema does"
            )
        raw = self._raw[event_type]
        try:
            value = _coerce(raw, data, named={})
            try:
                fastavro.validation.validate(value, schema, raise_errors=True)
            except fastavro.validation.ValidationError as exc:
                raise EventValidationError(
                    f"{event_type}: payload does not match its schema: {_first_error(exc)}"
                ) from exc
            self._checks[event_type](value)
        except EventValidationError as exc:
            # The publisher wrote JSON: name the field as a JSON Pointer into what they wrote
            # (``/risk_level``), not as the Avro record's full name or a dotted path.
            message = pointed(raw, str(exc))
            if not message.startswith(f"{event_type}: "):
                message = f"{event_type}: {message}"
            raise EventValidationError(message) from exc
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, value)
        return buf.getvalue()

    def decode(self, event_type: str, payload: bytes) -> dict[str, Any]:
        """Decode schemaless Avro; reject truncated, trailing or out-of-range data."""
        schema = self.schema(event_type)
        buf = io.BytesIO(payload)
        try:
            value = fastavro.schemaless_reader(buf, schema, None)
        except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError, ValueError...
            raise EventValidationError(
                f"{event_type}: payload is not valid Avro for this type ({type(exc).__name__})"
            ) from exc
        if buf.tell() != len(payload):
            raise EventValidationError(
                f"{event_type}: payload has {len(payload) - buf.tell()} trailing bytes "
                "after the Avro record"
            )
        if not isinstance(value, dict):
            raise EventValidationError(f"{event_type}: payload is not a record")
        self._checks[event_type](value)
        return value


def _first_error(exc: Exception) -> str:
    """The first schema mismatch as "field F: expected X, got <type>".

    fastavro's own message is a JSON list (its first line is just ``[``) that echoes the
    value; payloads are confidential, so only the value's type is named.
    """
    errors = getattr(exc, "errors", ())
    if not errors:
        text = str(exc).strip().splitlines()
        return text[0][:300] if text else type(exc).__name__
    first = errors[0]
    # A union reports one error per branch, all for the same field.
    expected = " or ".join(_describe(e.schema) for e in errors if e.field == first.field)
    got = "nothing" if first.datum is None else f"a {type(first.datum).__name__}"
    return f"field {first.field}: expected {expected}, got {got}"[:300]


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return " or ".join(_describe(branch) for branch in schema)
    if isinstance(schema, dict):
        if schema.get("type") == "enum":
            return f"one of {', '.join(schema['symbols'])}"
        if "logicalType" in schema:
            return str(schema["logicalType"])
        return str(schema.get("name") or _describe(schema.get("type")))
    return str(schema)


def _too_deep(value: Any, limit: int = _MAX_DEPTH) -> bool:
    """Whether containers nest deeper than ``limit``; iterative, so it cannot overflow.

    fastavro's validator recurses into (and its error message repr()s) whatever it is given,
    so a hostile, deeply nested payload would otherwise end in RecursionError.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _resolve(schema: Any, named: dict[str, Any]) -> Any:
    """Follow a by-name reference to a named type defined earlier in the same file."""
    if isinstance(schema, str) and schema in named:
        return named[schema]
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
        ns = schema.get("namespace", "")
        name = schema["name"]
        named[name] = schema
        if ns and "." not in name:
            named[f"{ns}.{name}"] = schema
    return schema


def _field_paths(
    schema: Any, prefix: str = "", named: dict[str, Any] | None = None
) -> Iterator[str]:
    named = {} if named is None else named
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        for branch in schema:
            yield from _field_paths(branch, prefix, named)
        return
    if isinstance(schema, dict) and schema.get("type") == "record":
        for field in schema["fields"]:
            path = f"{prefix}{field['name']}"
            yield path
            yield from _field_paths(field["type"], f"{path}.", named)
    elif isinstance(schema, dict) and schema.get("type") == "array":
        yield from _field_paths(schema["items"], prefix, named)


#: Avro's numeric form of each logical type: a count of these since 1970-01-01 UTC
_EPOCH_UNITS = {"date": "days", "timestamp-millis": "milliseconds"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _from_epoch(logical: str, count: int) -> dt.date | dt.datetime:
    """A number in a date or timestamp field, as the value it stands for, if there is one.

    Avro writes any int, but a count of days or milliseconds outside Python's years 1 to
    9999 cannot be read back: accepted as it was, it made an event the hub itself could not
    decode (found by ``test_encode_sample_with_one_field_replaced``).
    """
    try:
        moment = _EPOCH + dt.timedelta(**{_EPOCH_UNITS[logical]: count})
    except OverflowError as exc:
        raise EventValidationError(
            f"{count} {_EPOCH_UNITS[logical]} from 1970-01-01 is outside the years 1 to 9999"
        ) from exc
    return moment.date() if logical == "date" else moment


def _coerce(schema: Any, value: Any, named: dict[str, Any], depth: int = 0, path: str = "") -> Any:
    """Turn JSON values into what fastavro expects (ISO dates to ``date`` objects).

    ``path`` is where ``value`` sits (dotted, ``address.district``), for the messages.
    """
    if depth > _MAX_DEPTH:
        raise EventValidationError("payload nests deeper than any schema allows")
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        if value is None:
            return None
        for branch in schema:
            if branch != "null":
                return _coerce(branch, value, named, depth + 1, path)
        return value
    if isinstance(schema, dict):
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical == "date" and isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError as exc:
                raise EventValidationError(
                    f"field {path or 'payload'}: expected a date YYYY-MM-DD, got {value!r}"
                ) from exc
        if logical in _EPOCH_UNITS and isinstance(value, int) and not isinstance(value, bool):
            return _from_epoch(logical, value)
        if logical == "timestamp-millis" and isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError as exc:
                raise EventValidationError(
                    f"field {path or 'payload'}: expected an ISO 8601 timestamp, got {value!r}"
                ) from exc
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        if kind == "record" and isinstance(value, Mapping):
            fields = {f["name"]: f for f in schema["fields"]}
            unknown = sorted(set(value) - set(fields))
            if unknown:
                where = f"field {path}: " if path else ""
                # a record's hub_hint says why nothing else belongs (s17A: depersonalised)
                why = f" ({schema['hub_hint']})" if schema.get("hub_hint") else ""
                raise EventValidationError(
                    f"{where}unexpected field(s) {', '.join(map(repr, unknown))}: "
                    f"expected only {', '.join(fields)}{why}"
                )
            return {
                name: _coerce(
                    f["type"], value[name], named, depth + 1, f"{path}.{name}" if path else name
                )
                for name, f in fields.items()
                if name in value
            }
        if kind == "array" and isinstance(value, list):
            return [
                _coerce(schema["items"], v, named, depth + 1, f"{path or 'payload'}[{i}]")
                for i, v in enumerate(value)
            ]
        if isinstance(kind, dict | list):
            return _coerce(kind, value, named, depth + 1, path)
    return value


#: one schema's constraint check of a whole payload (raises ``EventValidationError``)
_Check = Callable[[Any], None]
#: a compiled check of one value at one place in the schema: (value, path)
_Node = Callable[[Any, str], None]
_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))


def _constraints(schema: Any, event_type: str) -> _Check:
    """The ``hub_*`` constraint check of one schema, compiled once (at registry load).

    Each payload was checked by walking the schema beside the value (``_check_constraints``):
    about as costly per routed event as verifying its signature. The compiled check visits
    only the places that carry a constraint, with each ``hub_pattern`` compiled once, and
    raises the same errors in the same order. A schema the compiled form cannot mirror
    exactly keeps the walk: one that refers to a named type by name (the walk resolves names
    as it meets their definitions in the value), or whose nesting reaches the walk's depth
    limit. No schema of this hub does either.
    """
    if _by_name(schema) or _depth(schema) > _MAX_DEPTH:

        def walk(value: Any) -> None:
            _check_constraints(schema, value, event_type, path="", named={})

        return walk
    node = _compile(schema, event_type)
    if node is None:
        return _no_constraints

    def check(value: Any) -> None:
        node(value, "")

    return check


def _no_constraints(value: Any) -> None:
    """The check of a schema without ``hub_*`` properties."""


def _by_name(schema: Any) -> bool:
    """Whether the schema refers to a type by name where ``_check_constraints`` resolves it."""
    if isinstance(schema, str):
        return schema not in _PRIMITIVES
    if isinstance(schema, list):
        return any(_by_name(branch) for branch in schema)
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind == "record":
        return any(_by_name(f["type"]) for f in schema["fields"])
    if kind == "array":
        return _by_name(schema["items"])
    return isinstance(kind, dict | list) and _by_name(kind)


def _depth(schema: Any) -> int:
    """The deepest ``depth`` at which ``_check_constraints`` can visit this schema."""
    if isinstance(schema, list):
        return 1 + max((_depth(branch) for branch in schema if branch != "null"), default=-1)
    if not isinstance(schema, dict):
        return 0
    kind = schema.get("type")
    if kind == "record":
        return 1 + max((_depth(f["type"]) for f in schema["fields"]), default=-1)
    if kind == "array":
        return 1 + _depth(schema["items"])
    if isinstance(kind, dict | list):
        return 1 + _depth(kind)
    return 0


def _compile(schema: Any, event_type: str) -> _Node | None:
    """``_check_constraints`` of one schema node as a closure; None where it checks nothing."""
    if isinstance(schema, list):
        # as the walk does: a value is checked against the first branch that is not null
        branch = next((b for b in schema if b != "null"), None)
        chosen = _compile(branch, event_type) if branch is not None else None
        if chosen is None:
            return None

        def union(value: Any, path: str) -> None:
            if value is not None:
                chosen(value, path)

        return union
    if not isinstance(schema, dict):
        return None
    props = _compile_props(schema, event_type)
    kind = schema.get("type")
    if kind == "record":
        # the properties may sit on the field as well as on its type (``_check_constraints``)
        fields: list[tuple[str, _Node | None, _Node | None]] = []
        for f in schema["fields"]:
            own, typed = _compile_props(f, event_type), _compile(f["type"], event_type)
            if own is not None or typed is not None:
                fields.append((f["name"], own, typed))
        if not fields:
            return _at(props)

        def record(value: Any, path: str) -> None:
            if props is not None:
                props(value, path or "payload")
            if isinstance(value, Mapping):
                for name, own, typed in fields:
                    item = value.get(name)
                    field_path = f"{path}.{name}" if path else name
                    if own is not None:
                        own(item, field_path)
                    if typed is not None:
                        typed(item, field_path)

        return record
    if kind == "array":
        items = _compile(schema["items"], event_type)
        if items is None:
            return _at(props)

        def array(value: Any, path: str) -> None:
            where = path or "payload"
            if props is not None:
                props(value, where)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    items(item, f"{where}[{i}]")

        return array
    inner = _compile(kind, event_type) if isinstance(kind, dict | list) else None
    if inner is None:
        return _at(props)

    def nested(value: Any, path: str) -> None:
        if props is not None:
            props(value, path or "payload")
        inner(value, path)

    return nested


def _at(props: _Node | None) -> _Node | None:
    """A node that checks only its own properties, where an empty path is the payload's."""
    if props is None:
        return None

    def own(value: Any, path: str) -> None:
        props(value, path or "payload")

    return own


def _compile_props(props: Mapping[str, Any], event_type: str) -> _Node | None:
    """``_check_props`` for one set of properties, the pattern compiled once; None if none."""
    low, high = props.get("hub_min"), props.get("hub_max")
    has_pattern = "hub_pattern" in props
    if not has_pattern and low is None and high is None:
        return None
    pattern = props["hub_pattern"] if has_pattern else None
    fullmatch = re.compile(pattern).fullmatch if pattern is not None else None
    expected = _expected(props) if has_pattern else ""

    def check(value: Any, where: str) -> None:
        if fullmatch is not None and isinstance(value, str) and not fullmatch(value):
            raise EventValidationError(
                f"{event_type}: field {where}: expected {expected}, "
                f"got a value of length {len(value)}"
            )
        if isinstance(value, int) and not isinstance(value, bool):
            if (low is not None and value < low) or (high is not None and value > high):
                raise EventValidationError(
                    f"{event_type}: field {where}: expected {low}..{high}, got {value}"
                )

    return check


def _expected(props: Mapping[str, Any]) -> str:
    """What a ``hub_pattern`` asks for: the schema's ``hub_hint`` in words, else the pattern.

    A hint says what to send instead (s17A counts: "the outward code only, e.g. B97"), so a
    publisher who sent a full postcode reads why it was refused, not a regular expression.
    The value itself is never echoed: it may be the personal data the pattern keeps out.
    """
    hint = props.get("hub_hint")
    return str(hint) if hint else f"to match {props['hub_pattern']}"


def _check_constraints(
    schema: Any, value: Any, event_type: str, path: str, named: dict[str, Any], depth: int = 0
) -> None:
    if depth > _MAX_DEPTH:
        raise EventValidationError(f"{event_type}: payload nests too deeply")
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        if value is None:
            return
        for branch in schema:
            if branch != "null":
                _check_constraints(branch, value, event_type, path, named, depth + 1)
                return
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    where = path or "payload"
    _check_props(schema, value, event_type, where)
    if kind == "record" and isinstance(value, Mapping):
        for field in schema["fields"]:
            name = field["name"]
            field_path = f"{path}.{name}" if path else name
            # The properties may sit on the field (``{"name": "postcode", "type": "string",
            # "hub_pattern": ...}``) as well as on the type; both must be enforced.
            _check_props(field, value.get(name), event_type, field_path)
            _check_constraints(
                field["type"], value.get(name), event_type, field_path, named, depth + 1
            )
    elif kind == "array" and isinstance(value, list):
        for i, item in enumerate(value):
            _check_constraints(schema["items"], item, event_type, f"{where}[{i}]", named, depth + 1)
    elif isinstance(kind, dict | list):
        _check_constraints(kind, value, event_type, path, named, depth + 1)


def _check_props(props: Mapping[str, Any], value: Any, event_type: str, where: str) -> None:
    """Enforce ``hub_pattern``/``hub_min``/``hub_max`` found in ``props`` on one value."""
    if "hub_pattern" in props and isinstance(value, str):
        if not re.fullmatch(props["hub_pattern"], value):
            raise EventValidationError(
                f"{event_type}: field {where}: expected {_expected(props)}, "
                f"got a value of length {len(value)}"
            )
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = props.get("hub_min"), props.get("hub_max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise EventValidationError(
                f"{event_type}: field {where}: expected {low}..{high}, got {value}"
            )
