"""Load a protocol YAML file, keeping line numbers so findings can say where.

ruamel.yaml's round-trip loader records the line of every mapping key and sequence item;
``LineIndex`` maps a location such as ``rules[2].fields[1]`` to its line in the file.

That parse is slow (about 0.15 s of CPU for the reference protocol, pure Python) and one
process reads its protocol several times (the audit sink four times as it starts, a router
worker twice), so the parsed document is kept per file content (``_parsed``); validation
still runs on every load, on a copy, so each call returns a model of its own.

With ``HUB_PROTOCOL_CACHE`` in the environment (``HubSettings.protocol_cache``, which ``hub
up`` passes to its processes whether it came from the environment or ``hub.toml``) naming a
directory, the parsed document is also kept there as JSON, by content,
for the next process: a hub's workers, sink and CLI commands then parse a protocol once
between them. The directory must belong to this user and be writable by no one else (what
is read from it decides who receives what), or it is not used; a document JSON cannot hold
exactly (a timestamp, a float that is not finite) is not kept; an unreadable or damaged
entry is parsed again and rewritten.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
import os
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


#: the environment variable of ``HubSettings.protocol_cache``, read at each parse
CACHE_ENV = "HUB_PROTOCOL_CACHE"
#: the version of the cache entries' format
_CACHE_FORMAT = 1
#: how a date (YAML's ``2025-04-01``) is written in a cache entry
_DATE = "$date"


def _cache_dir() -> Path | None:
    """The parse cache directory, if one is set and only this user can write to it."""
    value = os.environ.get(CACHE_ENV)
    if not value:
        return None
    directory = Path(value)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = directory.stat()
    except OSError:
        return None
    if mode.st_uid != os.getuid() or mode.st_mode & 0o022:
        return None  # another user could plant a document: parse instead
    return directory


def _exact_in_json(node: Any) -> bool:
    """Whether JSON (with dates tagged) gives ``node`` back equal and of the same kinds."""
    if isinstance(node, dict):
        if node.keys() == {_DATE}:
            return False  # would come back as a date
        return all(isinstance(k, str) and _exact_in_json(v) for k, v in node.items())
    if isinstance(node, list):
        return all(_exact_in_json(v) for v in node)
    if isinstance(node, float):
        return math.isfinite(node)
    return node is None or isinstance(node, str | int) or type(node) is dt.date


def _tag_dates(node: Any) -> Any:
    if type(node) is dt.date:
        return {_DATE: node.isoformat()}
    raise TypeError(f"not kept in the parse cache: {type(node).__name__}")


def _untag_dates(node: dict[str, Any]) -> Any:
    if node.keys() == {_DATE}:
        return dt.date.fromisoformat(node[_DATE])
    return node


def _cached(directory: Path, digest: str) -> tuple[Any, dict[str, int]] | None:
    """The parse kept for ``digest``, if there is a sound one."""
    try:
        entry = json.loads((directory / f"{digest}.json").read_bytes(), object_hook=_untag_dates)
        if entry["format"] != _CACHE_FORMAT or entry["sha256"] != digest:
            return None
        data, lines = entry["data"], entry["lines"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, or damaged: parse again
    if not isinstance(lines, dict):
        return None
    return data, lines


def _keep(directory: Path, digest: str, parsed: tuple[Any, dict[str, int]]) -> None:
    """Write the parse for ``digest`` (owner-only, whole or not at all); errors are ignored."""
    data, lines = parsed
    if not _exact_in_json(data):
        return
    entry = {"format": _CACHE_FORMAT, "sha256": digest, "data": data, "lines": lines}
    temporary = directory / f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(entry, out, default=_tag_dates, separators=(",", ":"))
        os.replace(temporary, directory / f"{digest}.json")
    except OSError:
        temporary.unlink(missing_ok=True)


def _parsed(path: Path, raw_bytes: bytes, digest: str) -> tuple[Any, dict[str, int]]:
    """The document in ``raw_bytes`` as plain data, and the line of each location in it.

    Kept by content, not by path: a file edited in place is parsed again.
    """
    with _PARSED_LOCK:
        if (hit := _PARSED.get(digest)) is not None:
            return hit
    directory = _cache_dir()
    parsed = _cached(directory, digest) if directory is not None else None
    if parsed is None:
        try:
            doc = YAML(typ="rt").load(raw_bytes)
        except YAMLError as exc:
            raise ProtocolError(f"protocol {path}: not valid YAML: {exc}") from exc
        lines: dict[str, int] = {}
        _index(doc, "", lines)
        parsed = (_plain(doc), lines)
        if directory is not None:
            _keep(directory, digest, parsed)
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
