"""Keyed pseudonyms and the subject/case references they are computed from."""

from __future__ import annotations

import datetime as dt
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from hub.audit import subjects
from hub.audit.pseudonym import KEY_BYTES, Pseudonymiser, load_pseudonym_key
from hub.audit.subjects import case_ref, person_ref, subject_refs
from hub.errors import ConfigError
from hub.settings import HubSettings

KEY = bytes(range(32))


def settings(tmp_path: Path, **kwargs: object) -> HubSettings:
    return HubSettings(data_dir=tmp_path / "data", **kwargs)  # type: ignore[arg-type]


# --- Pseudonymiser ------------------------------------------------------------------------


def test_subject_pseudonym_is_stable_and_shaped() -> None:
    first = Pseudonymiser(KEY).subject("SUBJ-001")
    assert first == Pseudonymiser(KEY).subject("SUBJ-001")
    assert first.startswith("ps_")
    assert len(first) == 3 + 32
    int(first[3:], 16)  # hex


def test_pseudonyms_are_the_ones_every_stored_log_was_written_with() -> None:
    """Known answers (HMAC-SHA256, truncated): a change of how they are computed must not
    change a value, or every audit log's subject and case lookups would find nothing."""
    p = Pseudonymiser(KEY)
    assert p.subject("SUBJ-001") == "ps_b63e3a8054c79b14b7b2b80bfe97b5d3"
    assert p.case("MARAC-NW-2026-0037") == "pc_1d0b864fd8393b60d0bc9f5035ff8166"


def test_pseudonym_normalises_whitespace_and_case() -> None:
    p = Pseudonymiser(KEY)
    assert p.subject("  subj-001\n") == p.subject("SUBJ-001")
    assert p.case(" Case-9 ") == p.case("CASE-9")


def test_pseudonym_is_keyed() -> None:
    other = bytes(reversed(KEY))
    assert Pseudonymiser(KEY).subject("SUBJ-001") != Pseudonymiser(other).subject("SUBJ-001")
    assert Pseudonymiser(KEY).case("C-1") != Pseudonymiser(other).case("C-1")


def test_different_refs_differ() -> None:
    p = Pseudonymiser(KEY)
    assert p.subject("SUBJ-001") != p.subject("SUBJ-002")


def test_case_and_subject_are_domain_separated() -> None:
    p = Pseudonymiser(KEY)
    assert p.case("REF-1")[3:] != p.subject("REF-1")[3:]
    assert p.case("REF-1").startswith("pc_")


def test_repr_hides_key() -> None:
    assert KEY.hex() not in repr(Pseudonymiser(KEY))
    assert "hidden" in repr(Pseudonymiser(KEY))


def test_short_key_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        Pseudonymiser(b"short")


# --- load_pseudonym_key -------------------------------------------------------------------


def test_key_file_created_0600(tmp_path: Path) -> None:
    s = settings(tmp_path)
    key = load_pseudonym_key(s)
    path = tmp_path / "data" / "pseudonym.key"
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bytes.fromhex(path.read_text().strip()) == key
    assert [p.name for p in path.parent.iterdir()] == ["pseudonym.key"]  # no temp left over


def test_key_file_reused(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert load_pseudonym_key(s) == load_pseudonym_key(s)


def test_key_from_settings_wins(tmp_path: Path) -> None:
    s = settings(tmp_path, pseudonym_key=SecretStr(KEY.hex()))
    assert load_pseudonym_key(s) == KEY
    assert not (tmp_path / "data" / "pseudonym.key").exists()


@pytest.mark.parametrize("value", ["not-hex-at-all", "abcd"])
def test_bad_configured_key_refused_without_echo(tmp_path: Path, value: str) -> None:
    s = settings(tmp_path, pseudonym_key=SecretStr(value))
    with pytest.raises(ConfigError, match="HUB_PSEUDONYM_KEY") as info:
        load_pseudonym_key(s)
    assert value not in str(info.value)


def test_corrupt_key_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "pseudonym.key"
    path.parent.mkdir()
    path.write_text("zz\n")
    with pytest.raises(ConfigError, match="expected hex"):
        load_pseudonym_key(settings(tmp_path))


# --- subject and case references ----------------------------------------------------------

MARAC = {"case_ref": "MARAC-2024-17", "subject_ref": "WMP-SUBJ-9"}
INTEL = {"intel_ref": "INT-5", "subject_refs": ["S-1", "S-2", "S-1"]}


@pytest.mark.parametrize(
    "event_type",
    [
        "uk.csp.marac.flag.raised.v1",
        "uk.csp.marac.flag.updated.v1",
        "uk.csp.marac.flag.withdrawn.v2",
    ],
)
def test_marac_refs(event_type: str) -> None:
    assert subject_refs(event_type, MARAC) == ["WMP-SUBJ-9"]
    assert case_ref(event_type, MARAC) == "MARAC-2024-17"


def test_socjag_refs_in_order_without_repeats() -> None:
    assert subject_refs("uk.csp.socjag.intel.v1", INTEL) == ["S-1", "S-2"]
    assert case_ref("uk.csp.socjag.intel.v1", INTEL) == "INT-5"


@pytest.mark.parametrize("dob", [dt.date(1990, 2, 3), "1990-02-03", dt.datetime(1990, 2, 3, 0, 0)])
def test_pubwatch_person_ref(dob: object) -> None:
    data = {"ban_ref": "PW-1", "subject": {"name": "  John   SMITH ", "date_of_birth": dob}}
    assert subject_refs("uk.csp.pubwatch.ban.v1", data) == ["john smith|1990-02-03"]
    assert case_ref("uk.csp.pubwatch.ban.v1", data) == "PW-1"


def test_person_ref_matches_however_typed() -> None:
    assert person_ref("John\tSmith", dt.date(1990, 2, 3)) == person_ref("JOHN SMITH", "1990-02-03")


@pytest.mark.parametrize("event_type", ["uk.csp.delivery.ack.v1", "uk.csp.unknown.v1", ""])
def test_types_without_refs(event_type: str) -> None:
    data = {**MARAC, **INTEL}
    assert subject_refs(event_type, data) == []
    assert case_ref(event_type, data) is None


def test_malformed_payloads_yield_nothing() -> None:
    assert subject_refs("uk.csp.marac.flag.raised.v1", {}) == []
    assert case_ref("uk.csp.marac.flag.raised.v1", {"case_ref": 7}) is None
    assert subject_refs("uk.csp.socjag.intel.v1", {"subject_refs": "S-1"}) == []
    assert subject_refs("uk.csp.pubwatch.ban.v1", {"subject": {"name": "x"}}) == []


@given(
    refs=st.lists(st.sampled_from(["C-1", " c-1 ", "C-2", "", "MARAC-NW-2026-0037"]), max_size=8)
)
def test_a_case_asked_again_gets_the_pseudonym_a_fresh_pseudonymiser_computes(
    refs: list[str],
) -> None:
    """The last case's pseudonym is kept (the router asks twice per event): never another's."""
    kept = Pseudonymiser(KEY)
    for ref in refs:
        assert kept.case(ref) == Pseudonymiser(KEY).case(ref)
        assert kept.subject(ref) == Pseudonymiser(KEY).subject(ref)  # a subject is not a case


@given(event_type=st.text(max_size=30) | st.sampled_from(["uk.csp.marac.flag.raised.v12"]))
def test_event_families_are_the_types_without_their_version(event_type: str) -> None:
    for _ in range(2):  # the second answer is the kept one
        assert subjects._family(event_type) == re.sub(r"\.v[0-9]+$", "", event_type)
