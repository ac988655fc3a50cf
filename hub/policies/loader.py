"""Load a protocol YAML file, keeping line numbers so findings can say where.

ruamel.yaml's round-trip loader records the line of every mapping key and sequence item;
``LineIndex`` maps a location such as ``rules[2].fields[1]`` to its line in the file.

That parse is slow (about 0.15 s of CPU for the reference protocol, pure Python) and one
process reads its protocol several times (the audit sink four times as it starts, a router
worker twice), so the parsed document is kept per file content (``_parsed``); validation
still runs on every load, on a copy, so each call returns a model of its own.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from hub.errors import ProtocolError
from hub.policies.model import Protocol

#: where the event schemas live (``hub/schemas/<type>.avsc``)
_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

__all__ = ["LineIndex", "load_protocol", "load_protocol_with_lines"]


class LineIndex:
    """Line numbers (1-based) of locations in a protocol file."""

    def __init__(self, path: Path, lines: dict[str, int]) -> None:
        self.path = path
        self._lines = lines

    def line(self, location: str) -> int:
        """The line of ``location``, or of its nearest enclosing location that has one."""
        loc = location
        while loc:
            if loc in self._lines:
                return self._lines[loc]
            cut = max(loc.rfind("."), loc.rfind("["))
            loc = loc[:cut] if cut > 0 else ""
        return 1

    def where(self, location: str) -> str:
        """``file:line`` for a location."""
        return f"{self.path}:{self.line(location)}"


def _index(node: Any, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, CommentedMap):
        for key in node:
            loc = f"{prefix}.{key}" if prefix else str(key)
            pos = node.lc.key(key)
            out[loc] = pos[0] + 1
            _index(node[key], loc, out)
    elif isinstance(node, CommentedSeq):
        for i, item in enumerate(node):
            loc = f"{prefix}[{i}]"
            out[loc] = node.lc.item(i)[0] + 1
            _index(item, loc, out)


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    return node


#: parsed protocol documents by the SHA-256 of their bytes: (plain data, location -> line)
_PARSED: dict[str, tuple[Any, dict[str, int]]] = {}
#: documents kept; tests load many variants of a protocol, a process usually one
_PARSED_MAX = 16
_PARSED_LOCK = threading.Lock()


def _parsed(path: Path, raw_bytes: bytes, digest: str) -> tuple[Any, dict[str, int]]:
    """The document in ``raw_bytes`` as plain data, and the line of each location in it.

    Kept by content, not by path: a file edited in place is parsed again.
    """
    with _PARSED_LOCK:
        if (hit := _PARSED.get(digest)) is not None:
            return hit
    try:
        doc = YAML(typ="rt").load(raw_bytes)
    except YAMLError as exc:
        raise ProtocolError(f"protocol {path}: not valid YAML: {exc}") from exc
    lines: dict[str, int] = {}
    _index(doc, "", lines)
    parsed = (_plain(doc), lines)
    with _PARSED_LOCK:  # the console loads protocols from its thread pool
        while len(_PARSED) >= _PARSED_MAX:
            del _PARSED[next(iter(_PARSED))]  # the oldest
        _PARSED[digest] = parsed
    return parsed


def load_protocol_with_lines(path: Path) -> tuple[Protocol, LineIndex]:
    """Parse and validate a protocol file; errors name the file and line."""
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise ProtocolError(f"protocol {path}: cannot read: {exc.strerror}") from exc
    digest = hashlib.sha256(raw_bytes).hexdigest()
    parsed, lines = _parsed(path, raw_bytes, digest)
    index = LineIndex(path, lines)
    data = copy.deepcopy(parsed)  # the cached document stays as parsed, whatever the model keeps
    if not isinstance(data, dict):
        raise ProtocolError(f"protocol {path}: expected a mapping at the top, got {type(data)}")
    data["content_hash"] = "sha256:" + digest
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ""
            for part in err["loc"]:
                loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
            problems.append(f"{index.where(loc)}: {loc}: {err['msg']}")
        raise ProtocolError(
            f"protocol {path}: {len(problems)} problem(s):\n" + "\n".join(problems)
        ) from exc
    _check_crypto_event_types(protocol, index)
    return protocol, index


def _check_crypto_event_types(protocol: Protocol, index: LineIndex) -> None:
    """Refuse a ``crypto.event_types`` entry without a schema.

    A typo would otherwise leave that type silently on the default suite.
    """
    known = {p.name.removesuffix(".avsc") for p in _SCHEMA_DIR.glob("*.avsc")}
    problems = [
        f"{index.where(f'crypto.event_types.{t}')}: crypto.event_types.{t}: expected an event "
        f"type with a schema ({', '.join(sorted(known))}), got {t!r}"
        for t in protocol.crypto.event_types
        if t not in known
    ]
    if problems:
        raise ProtocolError(
            f"protocol {index.path}: {len(problems)} problem(s):\n" + "\n".join(problems)
        )


def load_protocol(path: Path) -> Protocol:
    """Parse and validate a protocol file."""
    return load_protocol_with_lines(path)[0]
