"""The protocol parse cache across processes (``HUB_PROTOCOL_CACHE``, ``hub.policies.loader``).

A process that finds a protocol's parse kept in the directory reads it instead of parsing
the YAML; what it loads is the same model, line numbers included. The directory is trusted
only when this user alone can write to it, and a damaged entry is parsed again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from hub.errors import ProtocolError
from hub.policies import loader
from hub.policies.loader import load_protocol, load_protocol_with_lines
from hub.settings import default_protocol_path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "protocol-cache"
    monkeypatch.setenv(loader.CACHE_ENV, str(directory))
    return directory


def _new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """What another process starts with: nothing parsed in memory."""
    monkeypatch.setattr(loader, "_PARSED", {})


def test_a_second_process_reads_the_parse_and_gets_the_same_model(
    cache: Path, parses: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = default_protocol_path()
    first, first_lines = load_protocol_with_lines(path)
    assert len(parses) == 1
    (entry,) = cache.iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700
    _new_process(monkeypatch)
    second, second_lines = load_protocol_with_lines(path)
    assert len(parses) == 1  # read, not parsed
    assert second == first
    assert second_lines._lines == first_lines._lines
    # the reference protocol's dates come back as dates
    assert any(type(v) is dt.date for v in _leaves(second.model_dump()))


def _leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [leaf for v in node.values() for leaf in _leaves(v)]
    if isinstance(node, list):
        return [leaf for v in node for leaf in _leaves(v)]
    return [node]


def test_errors_from_a_cached_parse_name_the_file_and_line(
    cache: Path, parses: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    text = default_protocol_path().read_text()
    bad.write_text(text.replace("review_date: 2027-11-01", "review_date: [not, a, date]", 1))
    with pytest.raises(ProtocolError) as parsed:
        load_protocol(bad)
    _new_process(monkeypatch)
    with pytest.raises(ProtocolError) as cached:
        load_protocol(bad)
    assert len(parses) == 1
    assert str(cached.value) == str(parsed.value)
    assert f"{bad}:18: protocol.review_date" in str(cached.value)


def test_a_damaged_entry_is_parsed_again_and_rewritten(
    cache: Path, parses: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = default_protocol_path()
    expected = load_protocol(path)
    (entry,) = cache.iterdir()
    entry.write_text(entry.read_text()[:1000])
    _new_process(monkeypatch)
    assert load_protocol(path) == expected
    assert len(parses) == 2
    json.loads(entry.read_text())  # whole again


def test_an_entry_for_other_bytes_is_not_used(
    cache: Path, parses: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = default_protocol_path()
    load_protocol(path)
    (entry,) = cache.iterdir()
    other = tmp_path / "other.yaml"
    other.write_text(path.read_text() + "\n# edited\n")
    planted = json.loads(entry.read_text())  # the old parse, filed under the new text's hash
    digest = hashlib.sha256(other.read_bytes()).hexdigest()
    (cache / f"{digest}.json").write_text(json.dumps(planted))
    _new_process(monkeypatch)
    load_protocol(other)
    assert len(parses) == 2  # the entry names other bytes: parsed


def test_a_directory_others_can_write_to_is_not_used(
    cache: Path, parses: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    load_protocol(default_protocol_path())
    _new_process(monkeypatch)
    load_protocol(default_protocol_path())
    assert len(parses) == 2
    assert list(cache.iterdir()) == []


def test_without_the_setting_nothing_is_kept(
    tmp_path: Path, parses: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(loader.CACHE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    load_protocol(default_protocol_path())
    _new_process(monkeypatch)
    load_protocol(default_protocol_path())
    assert len(parses) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_document_json_cannot_hold_exactly_is_not_kept(
    cache: Path, parses: list[int], tmp_path: Path
) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text(default_protocol_path().read_text() + "\nx-note: {when: 2025-04-01T10:00:00Z}\n")
    with pytest.raises(ProtocolError):
        load_protocol(odd)  # the model refuses the extra key; its parse is not kept either
    assert list(cache.iterdir()) == []
