"""``load_protocol`` parses a protocol's text once per process, and every load stays its own.

The round-trip parse is the slow part of loading (the audit sink loaded the reference
protocol four times as it started); the parsed document is kept by content, so these check
what must not change with that: an edited file is read afresh, each call returns a model of
its own, and errors name the file and line they always did.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import ProtocolError
from hub.policies import loader
from hub.policies.loader import load_protocol, load_protocol_with_lines
from hub.settings import default_protocol_path

REF_TEXT = default_protocol_path().read_text()


def test_the_same_text_is_parsed_once(tmp_path: Path, parses: list[int]) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(REF_TEXT)
    second.write_text(REF_TEXT)
    loaded = [load_protocol(first), load_protocol(first), load_protocol(second)]
    assert len(parses) == 1
    assert loaded[0] == loaded[1] == loaded[2]


def test_an_edited_file_is_read_again(tmp_path: Path, parses: list[int]) -> None:
    path = tmp_path / "protocol.yaml"
    path.write_text(REF_TEXT)
    before = load_protocol(path)
    assert before.protocol.version == "2026.11"
    path.write_text(REF_TEXT.replace('version: "2026.11"', 'version: "2026.12"', 1))
    after = load_protocol(path)
    assert len(parses) == 2
    assert after.protocol.version == "2026.12"
    assert after.content_hash != before.content_hash


def test_each_load_returns_a_model_of_its_own(tmp_path: Path, parses: list[int]) -> None:
    path = tmp_path / "protocol.yaml"
    path.write_text(REF_TEXT)
    first = load_protocol(path)
    # a dict stays mutable inside a frozen model
    first.crypto.event_types["changed-by-a-caller"] = first.crypto.suite
    second = load_protocol(path)
    assert second is not first
    assert "changed-by-a-caller" not in second.crypto.event_types
    assert len(parses) == 1


def test_errors_name_each_file_and_its_line(tmp_path: Path, parses: list[int]) -> None:
    bad = REF_TEXT.replace("lawful_basis: ", "lawful_basis_typo: ", 1)
    line = bad[: bad.index("lawful_basis_typo")].count("\n") + 1
    for name in ("one.yaml", "two.yaml"):
        path = tmp_path / name
        path.write_text(bad)
        with pytest.raises(ProtocolError, match=rf"{path}:{line}: "):
            load_protocol_with_lines(path)
    assert len(parses) == 1


def test_invalid_yaml_names_the_file_every_time(tmp_path: Path, parses: list[int]) -> None:
    path = tmp_path / "protocol.yaml"
    path.write_text("parties: [unclosed\n")
    for _ in range(2):
        with pytest.raises(ProtocolError, match=rf"protocol {path}: not valid YAML"):
            load_protocol(path)


def test_the_oldest_text_goes_when_the_cache_is_full(
    tmp_path: Path, parses: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "_PARSED_MAX", 2)
    paths = []
    for n in range(3):  # three texts, room for two
        path = tmp_path / f"p{n}.yaml"
        path.write_text(REF_TEXT.replace('version: "2026.11"', f'version: "2026.1{n}"', 1))
        paths.append(path)
        load_protocol(path)
    assert len(loader._PARSED) == 2
    load_protocol(paths[2])  # kept
    assert len(parses) == 3
    assert load_protocol(paths[0]).protocol.version == "2026.10"  # gone: parsed again
    assert len(parses) == 4
    assert len(loader._PARSED) == 2
