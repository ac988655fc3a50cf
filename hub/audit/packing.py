"""How a record's canonical bytes are kept on disk: packed against the row's own columns.

Why. The Merkle log hashes each record's canonical JSON (sorted keys, compact), about 900
bytes, and the stores used to keep that *and* a column per field: about 2,300 bytes a record
on disk once indexed. Issue 16 asks for at most 1,000. The stores now keep only the columns
that queries filter on (``INDEX_COLUMNS``) and the canonical bytes packed (format 1):

* the field names go: the canonical form fixes them and their order (``FIELDS``), so only
  the values are kept, separated by a NUL byte (never in JSON text, which escapes control
  characters);
* a value that is exactly the JSON string of the row's column of that name is left empty
  and taken back from the column (``time``: when the column, ``+00:00``, and the JSON
  string, ``Z``, name the same instant in the same form);
* ``null`` and ``[]`` are one control byte each;
* the values of ``SHARED`` fields (the protocol's hash, rules, lawful bases, purposes:
  the same few strings in every record) are kept once, in the store's ``audit_values``
  table, and referred to by a control byte and their id (``SharedValues``);
* a CRC-32 of the canonical bytes ends the blob, so a change to the blob or to any column it
  borrows from is found at its row (``hub audit verify``), as comparing the duplicated
  columns used to.

Format 2 is format 1 with one more field, ``gateway`` (issue 17: the record names the legal
gateway of the rule it applied, e.g. "Crime and Disorder Act 1998 s115"), for records that
name one. A record without a gateway has no ``gateway`` key in its canonical form at all, so
every record written before the field existed keeps its bytes, its leaf and its format 1 row
(``canonical_values`` leaves a null gateway out).

Packing is checked by unpacking before it is trusted; anything that does not round-trip
(a field this format does not know, a control byte, an odd key order) is kept as the plain
canonical JSON, which starts with ``{`` and is read back as is. So is every row written by
hand, and rows the format would not shrink. ``unpack`` never raises: a blob it cannot read
gives ``None`` (the row is then reported, and its leaf is the stored bytes).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from hub.canonical import CANONICAL_ASCII

__all__ = [
    "FIELDS",
    "FIELDS_2",
    "INDEX_COLUMNS",
    "SHARED",
    "Prepared",
    "SharedValues",
    "canonical_values",
    "pack",
    "pack_prepared",
    "pack_values",
    "parts_of",
    "prepare_parts",
    "record_parts",
    "subjects_of",
    "time_string",
    "unpack",
    "unpack_checked",
]

#: ``AuditRecord``'s fields in canonical (sorted) order: format 1 forever, whatever the
#: model later gains (a record of another shape is kept unpacked, or gets a format of its own)
FIELDS = (
    "ack_event_id", "case_pseudonym", "condition", "decision", "event_id", "event_time",
    "event_type", "fields", "lawful_basis", "origin", "payload_sha256", "protocol_hash",
    "publisher", "purpose", "reason", "recipient", "record_id", "rule",
    "subject_pseudonyms", "time",
)  # fmt: skip
#: format 2: ``FIELDS`` and the rule's ``gateway``, in canonical (sorted) order
FIELDS_2 = tuple(sorted((*FIELDS, "gateway")))
#: the columns a store keeps beside the packed bytes, in this order (what queries filter on)
INDEX_COLUMNS = (
    "record_id", "time", "event_id", "publisher", "recipient", "decision", "case_pseudonym",
)  # fmt: skip

#: fields whose values come from the protocol and repeat from record to record (a reason
#: often names its event, so it is not one of them: the table would grow with the log)
SHARED = (
    "condition", "event_type", "fields", "gateway", "lawful_basis", "protocol_hash", "purpose",
    "rule",
)  # fmt: skip

_SEP = b"\x00"
_NULL = b"\x02"
_EMPTY_LIST = b"\x03"
_FROM_COLUMN = b""
_TOKENS = {b"null": _NULL, b"[]": _EMPTY_LIST}
_NULL_TEXT = _NULL.decode()
_EMPTY_TEXT = _EMPTY_LIST.decode()
#: ``_TOKENS`` for values kept as text (``record_parts``)
_TEXT_TOKENS = {"null": _NULL_TEXT, "[]": _EMPTY_TEXT}
_SEP_TEXT = _SEP.decode()


class _Format:
    """One packed format: its tag byte and where each of its fields sits."""

    __slots__ = (
        "borrowed", "borrowed_text", "field_set", "fields", "markers", "shared", "subjects",
        "tag", "tag_text", "template", "template_text", "time", "time_column",
    )  # fmt: skip

    def __init__(self, tag: bytes, fields: tuple[str, ...]) -> None:
        self.tag = tag
        self.fields = fields
        self.field_set = frozenset(fields)
        #: where each field's value starts: ``{"ack_event_id":`` then ``,"<name>":``
        self.markers = tuple(
            (b"{" if i == 0 else b",") + b'"' + name.encode() + b'":'
            for i, name in enumerate(fields)
        )
        #: field position -> column position, for the fields a column can stand in for
        self.borrowed = tuple((fields.index(name), i) for i, name in enumerate(INDEX_COLUMNS))
        self.time = fields.index("time")
        #: ``borrowed`` but for ``time``, and the column ``time`` is borrowed from
        self.borrowed_text = tuple(pair for pair in self.borrowed if pair[0] != self.time)
        self.time_column = INDEX_COLUMNS.index("time")
        self.shared = tuple(fields.index(name) for name in SHARED if name in fields)
        self.subjects = fields.index("subject_pseudonyms")
        #: the canonical bytes with a ``%b`` per value (field names hold no ``%``)
        self.template = b"".join(m + b"%b" for m in self.markers) + b"}"
        #: ``template`` and ``tag`` as text, for values kept as (ASCII) text until the end
        self.template_text = self.template.decode().replace("%b", "%s")
        self.tag_text = tag.decode()


_FORMAT_1 = _Format(b"\x01", FIELDS)
_FORMAT_2 = _Format(b"\x05", FIELDS_2)
_BY_TAG = {f.tag: f for f in (_FORMAT_1, _FORMAT_2)}
_BY_COUNT = {len(f.fields): f for f in (_FORMAT_1, _FORMAT_2)}
_REF = b"\x04"
_CONTROL = re.compile(rb"[\x00-\x1f]")
#: one encoder for every record (``hub.canonical``: the escape its stored bytes were made with)
_CANONICAL = CANONICAL_ASCII
#: the JSON string escape ``_CANONICAL`` uses (``ensure_ascii``: the C one where built)
_escape = json.encoder.encode_basestring_ascii
_CRC_BYTES = 4


def time_string(column: str) -> str | None:
    """The JSON string (unquoted) a ``time`` column stands for, or ``None`` if none.

    The column holds a UTC time as ``isoformat`` writes it with microseconds,
    ``<iso>+00:00`` (32 characters), and the canonical JSON the same instant as pydantic
    writes it, ``<iso>Z``: only a column in exactly that form names the JSON's time.

    The one statement of the rule. Three per-record (or per-event) paths keep it inline,
    where a call measurably slowed them (``_time_text``'s miss, ``_unpack``, and the
    reverse in ``hub.audit.sqlite._prepare``), each with a comment pointing here: a change
    to the rule changes them too.
    """
    if len(column) != 32 or not column.endswith("+00:00"):
        return None
    return column[:-6] + "Z"


def _column_json(fmt: _Format, field: int, column: str | None) -> bytes | None:
    """The JSON value the canonical bytes hold when ``column`` stands in for ``field``."""
    if column is None:
        return b"null"
    if field == fmt.time:
        string = time_string(column)
        if string is None:
            return None
        column = string
    return _escape(column).encode()


def _split(canonical: bytes) -> tuple[_Format, list[bytes]] | None:
    """The format ``canonical`` fits and its fields' values in order, or ``None``.

    Format 2 first: its ``gateway`` marker is absent from a format 1 record, while format 1's
    markers are all in a format 2 record (its ``fields`` value would swallow the gateway).
    """
    for fmt in (_FORMAT_2, _FORMAT_1):
        values = _split_as(fmt, canonical)
        if values is not None:
            return fmt, values
    return None


def _split_as(fmt: _Format, canonical: bytes) -> list[bytes] | None:
    """The values of ``fmt``'s fields in order, or ``None`` if ``canonical`` is not of it."""
    markers = fmt.markers
    if not canonical.startswith(markers[0]) or not canonical.endswith(b"}"):
        return None
    values: list[bytes] = []
    start = len(markers[0])
    for marker in markers[1:]:
        end = canonical.find(marker, start)
        if end <= start:  # missing, or an empty value (not JSON)
            return None
        values.append(canonical[start:end])
        start = end + len(marker)
    if start >= len(canonical) - 1:
        return None
    values.append(canonical[start:-1])
    return values


def _json_value(value: object) -> bytes:
    """``value`` as the canonical encoder writes it.

    Through the encoder's own string escape (``ensure_ascii``) for the types a dumped record
    holds, and the encoder itself for the rest.
    """
    if value is None:
        return b"null"
    if type(value) is str:
        return _escape(value).encode()
    if type(value) is list and all(type(item) is str for item in value):
        return ("[" + ",".join(map(_escape, value)) + "]").encode()
    return _CANONICAL.encode(value).encode()


#: pydantic's JSON of recent datetimes: an event's records share their times (issue 16).
#: Keyed with the zone as well: aware datetimes at one instant in two zones compare equal;
#: and with ``fold``: in one zone the two sides of a fold compare equal (and hash alike)
#: though their offsets differ (Europe/London's autumn hour: ``+01:00``, then ``Z``).
_TIME_TEXTS: dict[tuple[datetime, object, int], str] = {}
_TIME_TEXTS_KEPT = 4096


def _time_text(value: datetime) -> str:
    """The JSON of a UTC datetime with microseconds as pydantic writes it, else ""."""
    key = (value, value.tzinfo, value.fold)
    keep = True
    try:
        text = _TIME_TEXTS.get(key)
    except TypeError:  # a zone with ``__eq__`` and no hash (dateutil's): written, not kept
        text, keep = None, False
    if text is None:
        iso = value.isoformat()
        # pydantic writes an instant at offset zero with a ``Z`` and microseconds only when
        # there are some; ``isoformat`` agrees on everything else in this one form.
        # ``time_string`` inline: a miss per event on the append path, a call slowed it 5%
        if len(iso) != 32 or not iso.endswith("+00:00"):
            return ""
        text = '"' + iso[:-6] + 'Z"'
        if keep:
            if len(_TIME_TEXTS) >= _TIME_TEXTS_KEPT:
                _TIME_TEXTS.clear()
            _TIME_TEXTS[key] = text
    return text


def _tuple_text(value: tuple[Any, ...]) -> str:
    """The JSON of a tuple of ``str`` (``[]`` as its token), else ""."""
    if not value:
        return _EMPTY_TEXT
    for item in value:
        if type(item) is not str:
            return ""
    return "[" + ",".join(map(_escape, value)) + "]"


def _unsure(value: object) -> str:
    return ""


#: ``record_parts``'s writer of a value that is neither ``None`` nor a ``str``, by its type,
#: learnt as types are met (a record's are a handful: datetime, tuple, its decision's enum),
#: so such a value costs one lookup, not a chain of ``isinstance`` checks (issue 16)
_PART_WRITERS: dict[type, Callable[[Any], str]] = {}
_PART_WRITERS_KEPT = 64


def _part_writer(kind: type) -> Callable[[Any], str]:
    """The writer of values of exactly this type: their JSON text, or "" if unsure."""
    writer = _PART_WRITERS.get(kind)
    if writer is None:
        if issubclass(kind, datetime):
            writer = _time_text
        elif kind is tuple:
            writer = _tuple_text
        elif issubclass(kind, str) and issubclass(kind, Enum):
            writer = _escape  # a str enum's text is its value (``StrEnum``, str mixins)
        else:
            writer = _unsure
        if len(_PART_WRITERS) < _PART_WRITERS_KEPT:
            _PART_WRITERS[kind] = writer
    return writer


def record_parts(attrs: Mapping[str, Any]) -> list[str] | None:
    """Each field's canonical JSON text, from a record's attribute values (no ``model_dump``).

    ``null`` and ``[]`` come as their packed tokens (``prepare_parts`` puts them back in the
    canonical bytes). ``attrs`` must hold every field of ``FIELDS_2`` (a validated
    ``AuditRecord``'s ``__dict__``); the fields of ``FIELDS`` are taken if ``gateway`` is
    null. Only the types whose JSON is sure are written: ``None``, ``str``, tuples of
    ``str``, ``str`` enums and UTC datetimes with microseconds (pydantic's ``...ffffffZ``).
    Anything else (a time on a whole second, another offset) gives ``None``: the caller
    dumps the record instead.
    """
    names = FIELDS if attrs["gateway"] is None else FIELDS_2
    escape = _escape
    null = _NULL_TEXT
    writers = _PART_WRITERS
    parts = [
        null
        if v is None
        else escape(v)
        if type(v) is str
        else (writers.get(type(v)) or _part_writer(type(v)))(v)
        for v in map(attrs.__getitem__, names)
    ]
    return None if "" in parts else parts


def canonical_values(dumped: dict[str, Any]) -> tuple[bytes, list[bytes] | None]:
    """The canonical bytes of a record's ``model_dump(mode="json")``, and its fields' values.

    Byte for byte ``json.dumps(dumped, sort_keys=True, separators=(",", ":"))`` with a null
    ``gateway`` left out (the canonical form of records from before the field): with exactly
    ``FIELDS`` (or ``FIELDS_2``) as keys the sorted object is the format's template filled
    with each value's JSON; any other shape is encoded whole (values ``None``).
    """
    keys = dumped.keys()
    if keys == _FORMAT_2.field_set:
        fmt = _FORMAT_1 if dumped["gateway"] is None else _FORMAT_2
    elif keys == _FORMAT_1.field_set:
        fmt = _FORMAT_1
    else:
        if "gateway" in dumped and dumped["gateway"] is None:
            dumped = {k: v for k, v in dumped.items() if k != "gateway"}
        return _CANONICAL.encode(dumped).encode(), None
    # Inline for the two common cases: a call per value costs as much as the escaping.
    values = [
        b"null" if v is None else _escape(v).encode() if type(v) is str else _json_value(v)
        for v in map(dumped.__getitem__, fmt.fields)
    ]
    return fmt.template % tuple(values), values


class SharedValues:
    """A store's ``audit_values`` table as this process knows it: id <-> JSON value.

    Values met while writing get the next ids in ``pending``; the store writes them in the
    same transaction as the rows that refer to them and calls ``commit`` after it commits
    (``discard`` if it rolled back), so no row ever refers to an id the table lacks.
    """

    def __init__(self) -> None:
        self.last = 0
        self.values: dict[bytes, bytes] = {}  # reference -> value
        self._refs: dict[bytes, bytes] = {}  # value -> reference
        self.pending: dict[bytes, bytes] = {}  # value -> reference, not yet committed
        #: ``_refs`` as text, filled as ``ref_text`` meets committed values (never pending
        #: ones, which a rollback takes back)
        self._text_refs: dict[str, str] = {}

    def learn(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """Take rows ``(id, value)`` read from the table."""
        for ident, value in rows:
            ref = _REF + str(int(ident)).encode()
            self.values[ref] = bytes(value)
            self._refs[bytes(value)] = ref
            self.last = max(self.last, int(ident))

    def value(self, ref: bytes) -> bytes | None:
        """The value a reference stands for, if known."""
        return self.values.get(ref)

    def ref(self, value: bytes) -> bytes:
        """The reference for a value, a new one (pending) if the table lacks it."""
        ref = self._refs.get(value) or self.pending.get(value)
        if ref is None:
            ref = self.pending[value] = _REF + str(self.last + len(self.pending) + 1).encode()
        return ref

    def ref_text(self, value: str) -> str:
        """``ref`` for a value kept as (ASCII) text: a dictionary lookup once it is committed."""
        ref = self._text_refs.get(value)
        if ref is None:
            data = value.encode()
            ref = self.ref(data).decode()
            if data in self._refs:
                self._text_refs[value] = ref
        return ref

    def new_rows(self) -> list[tuple[int, bytes]]:
        """The pending values as rows ``(id, value)`` to write."""
        return [(int(ref[1:]), value) for value, ref in self.pending.items()]

    def commit(self) -> None:
        """The pending values are in the table now."""
        self.learn(self.new_rows())
        self.pending.clear()

    def discard(self) -> None:
        """The transaction that would have written the pending values rolled back."""
        self.pending.clear()


def pack(
    canonical: bytes, columns: Sequence[str | None], shared: SharedValues | None = None
) -> bytes:
    """``canonical`` as stored beside ``columns`` (``INDEX_COLUMNS`` values of the row).

    ``unpack(pack(c, columns), columns) == c`` always: the values are the bytes between the
    fixed markers, so the format's template rebuilds ``c`` from them; a control byte (which would
    clash with the separator and tokens) or an unexpected shape keeps ``c`` as it is.
    """
    if _CONTROL.search(canonical):
        return canonical
    split = _split(canonical)
    if split is None:
        return canonical
    return pack_values(canonical, split[1], columns, shared)


def pack_values(
    canonical: bytes,
    values: list[bytes],
    columns: Sequence[str | None],
    shared: SharedValues | None = None,
) -> bytes:
    """``pack`` for a record whose ``FIELDS`` values are known (``canonical_values``).

    ``values`` must be the canonical JSON of each field, as ``canonical_values`` gives them
    (so no control byte and none empty); the list is changed in place. Their number says the
    format (``FIELDS`` or ``FIELDS_2``).
    """
    fmt = _BY_COUNT[len(values)]
    # ``_column_json`` inline for the text columns (issue 16: a call per column cost as much
    # as the escaping); the time column keeps its own rule.
    escape = _escape
    for field, column in fmt.borrowed_text:
        text = columns[column]
        if values[field] == (b"null" if text is None else escape(text).encode()):
            values[field] = _FROM_COLUMN
    if values[fmt.time] == _column_json(fmt, fmt.time, columns[fmt.time_column]):
        values[fmt.time] = _FROM_COLUMN
    if shared is not None:
        ref = shared.ref
        for field in fmt.shared:
            value = values[field]
            if value not in _TOKENS:
                values[field] = ref(value)
    token = _TOKENS.get
    packed = (
        fmt.tag
        + _SEP.join([token(v, v) for v in values])
        + _SEP
        + zlib.crc32(canonical).to_bytes(_CRC_BYTES, "big")
    )
    return packed if len(packed) < len(canonical) else canonical


class Prepared:
    """A record's canonical bytes and its packed parts, all but the shared references.

    What can be done before a store's write lock (``prepare_parts``); ``pack_prepared``
    finishes under it, where the store's ``SharedValues`` are current.
    """

    __slots__ = ("canonical", "crc", "fmt", "parts")

    def __init__(self, canonical: bytes, fmt: _Format, parts: list[str], crc: bytes) -> None:
        self.canonical = canonical
        self.fmt = fmt
        self.parts = parts
        self.crc = crc


def parts_of(values: list[bytes]) -> list[str]:
    """``canonical_values``'s values as ``record_parts`` gives them (text, tokens)."""
    token = _TEXT_TOKENS.get
    return [token(text, text) for text in map(bytes.decode, values)]


def prepare_parts(
    parts: list[str], columns: Sequence[str | None], *, borrowed: bool = False
) -> Prepared:
    """``canonical_values`` and ``pack_values`` in one pass, from each field's JSON text.

    Issue 16: the audit sink built each record as a dict (``model_dump``), then a JSON
    value per field (bytes), then the packed values: most of the store's CPU a record
    besides SQLite's. A store that has the record's values writes each field's JSON once, as
    text (``record_parts``), and both the canonical bytes and the packed parts follow.

    ``parts`` must be the canonical JSON of each field of ``FIELDS`` or ``FIELDS_2`` in
    that order, as ``_CANONICAL`` writes it (``ensure_ascii``: ASCII, no control byte, none
    empty) but ``null`` and ``[]`` as their tokens; their number says the format, and the
    list is changed in place. ``borrowed``: every column is known to stand in for its field
    (both were written from one record's values: ``time`` as ``<iso>+00:00`` beside
    ``"<iso>Z"``), so none is compared. The bytes are those of ``canonical_values`` and
    ``pack_values`` for the same record.
    """
    fmt = _BY_COUNT[len(parts)]
    # No control byte in JSON text: a token is a whole value, and the only one there.
    canonical = (
        (fmt.template_text % tuple(parts))
        .replace(_NULL_TEXT, "null")
        .replace(_EMPTY_TEXT, "[]")
        .encode()
    )
    if borrowed:
        for field, _ in fmt.borrowed:
            parts[field] = ""
    else:
        escape = _escape
        for field, column in fmt.borrowed_text:
            text = columns[column]
            if parts[field] == (_NULL_TEXT if text is None else escape(text)):
                parts[field] = ""
        time = columns[fmt.time_column]
        string = None if time is None else time_string(time)
        if string is not None and parts[fmt.time] == escape(string):
            parts[fmt.time] = ""
    return Prepared(canonical, fmt, parts, zlib.crc32(canonical).to_bytes(_CRC_BYTES, "big"))


def pack_prepared(prepared: Prepared, shared: SharedValues | None = None) -> bytes:
    """The stored bytes of a ``Prepared`` record (``pack_values``'s).

    Its parts are left as they were, so a record packed again (a retried transaction)
    refers to its shared values again rather than taking a reference for a value.
    """
    parts = list(prepared.parts)
    if shared is not None:
        ref = shared.ref_text
        for field in prepared.fmt.shared:
            value = parts[field]
            if value != _NULL_TEXT and value != _EMPTY_TEXT:
                parts[field] = ref(value)
    packed = (prepared.fmt.tag_text + _SEP_TEXT.join(parts) + _SEP_TEXT).encode() + prepared.crc
    return packed if len(packed) < len(prepared.canonical) else prepared.canonical


def unpack(
    stored: bytes,
    columns: Sequence[Any],
    shared: SharedValues | None = None,
    *,
    check: bool = True,
) -> bytes | None:
    """The canonical bytes of a stored blob, or ``None`` if it does not decode (and check).

    ``None`` means the row was changed: a part missing, or (``check``) the CRC of what the
    blob and the row's columns give back is not the one written with it. ``check=False``
    rebuilds what the row says now, for reading a damaged row rather than trusting it.
    """
    return _unpack(stored, columns, shared, check=check)[0]


def unpack_checked(
    stored: bytes, columns: Sequence[Any], shared: SharedValues | None = None
) -> tuple[bytes | None, set[str] | None]:
    """The checked canonical bytes and, when that settles the row, the subjects they name.

    The subjects come back only for a packed row whose every column was borrowed (so each is
    exactly what the record says): the row then needs no other check than its subject index.
    ``(canonical, None)``: a plain JSON row, or one with a value kept inline (an odd time, an
    escaped string), to be checked the long way. ``(None, None)``: the row was changed.
    """
    canonical, parts = _unpack(stored, columns, shared, check=True)
    if canonical is None or parts is None:
        return canonical, None
    named = parts[_BY_COUNT[len(parts)].subjects]
    if named == b"[]":
        return canonical, set()
    try:
        pseudonyms = json.loads(named)
    except ValueError:
        return canonical, None
    if not isinstance(pseudonyms, list) or not all(type(p) is str for p in pseudonyms):
        return canonical, None
    return canonical, set(pseudonyms)


def _unpack(
    stored: bytes, columns: Sequence[Any], shared: SharedValues | None, *, check: bool
) -> tuple[bytes | None, list[bytes] | None]:
    """``(canonical, values)``; values only when every borrowed field came from its column."""
    fmt = _BY_TAG.get(stored[:1])
    if fmt is None:
        return (stored if stored[:1] == b"{" else None), None
    if stored[-_CRC_BYTES - 1 : -_CRC_BYTES] != _SEP:
        return None, None
    body = stored[1 : -_CRC_BYTES - 1]
    # The tokens are whole parts, and control bytes occur nowhere else in JSON text.
    parts = body.replace(_NULL, b"null").replace(_EMPTY_LIST, b"[]").split(_SEP)
    if len(parts) != len(fmt.fields):
        return None, None
    if _REF in body:
        known = {} if shared is None else shared.values
        for field in fmt.shared:
            part = parts[field]
            if part[:1] == _REF:
                value = known.get(part)
                if value is None:
                    return None, None
                parts[field] = value
    borrowed_all = True
    for field, column in fmt.borrowed:
        if parts[field]:
            borrowed_all = False
            continue
        text = columns[column]
        if text is None:
            parts[field] = b"null"
        elif field != fmt.time:
            parts[field] = _escape(text).encode()
        # ``time_string`` inline: once a row on every read and verify, a call slowed it 1-2%
        elif len(text) == 32 and text.endswith("+00:00"):
            parts[field] = b'"' + text[:-6].encode() + b'Z"'
        else:
            return None, None
    if _FROM_COLUMN in parts:
        return None, None
    canonical: bytes = fmt.template % tuple(parts)
    if check and zlib.crc32(canonical).to_bytes(_CRC_BYTES, "big") != stored[-_CRC_BYTES:]:
        return None, None
    return canonical, (parts if borrowed_all else None)


def subjects_of(canonical: bytes) -> set[str] | None:
    """The subject pseudonyms a canonical record names, or ``None`` if it is not readable."""
    split = _split(canonical)
    if split is None:
        return None
    fmt, values = split
    try:
        named = json.loads(values[fmt.subjects])
    except ValueError:
        return None
    if not isinstance(named, list) or not all(isinstance(p, str) for p in named):
        return None
    return set(named)
